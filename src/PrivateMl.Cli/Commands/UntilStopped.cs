namespace PrivateMl.Cli.Commands;

/// <summary>How a serving command (agent, serve, up, kms serve, simulator pccs) waits for Ctrl-C or SIGTERM.</summary>
internal static class UntilStopped
{
    /// <summary>Completes when <paramref name="cancellationToken"/> is cancelled; the cancellation is the expected end, not an error.</summary>
    public static async Task WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
