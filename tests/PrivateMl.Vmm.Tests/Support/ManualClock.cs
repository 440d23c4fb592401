namespace PrivateMl.Vmm.Tests.Support;

/// <summary>A clock the test moves by hand (deadlines are decided by it; waiting for processes still uses real time).</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset now = start;

    public override DateTimeOffset GetUtcNow() => now;

    public void Advance(TimeSpan by) => now += by;
}
