namespace PrivateMl.Testing;

/// <summary>A clock that reads what it is told: it moves only when a test sets <see cref="Now"/>.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = start;

    public override DateTimeOffset GetUtcNow() => Now;
}
