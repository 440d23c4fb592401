using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway.Proxy;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// The gateway's part of a graceful stop. The host calls <see cref="StoppingAsync"/> before any service stops (Kestrel
/// included): readiness turns to 503 at once, and the listeners stay open for <see cref="GatewayOptions.DrainDelay"/>
/// so a load balancer stops sending here while requests are still served. Kestrel then closes its listeners and gives
/// completions in flight the host's shutdown timeout (<see cref="GatewayOptions.ShutdownTimeout"/>) before it aborts
/// them; an aborted completion is never signed.
/// </summary>
internal sealed class GatewayShutdown(GatewayOptions options, CompletionRelay relay, TimeProvider time, ILogger<GatewayShutdown> logger) : IHostedLifecycleService
{
    private int _stopping;

    /// <summary>True from the moment the host began to stop.</summary>
    public bool IsStopping => Volatile.Read(ref _stopping) != 0;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            return; // A second stop of the same host: the drain already ran.
        }

        GatewayLog.Stopping(logger, options.DrainDelay.TotalSeconds, relay.InFlight, options.ShutdownTimeout.TotalSeconds);
        if (options.DrainDelay <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            await Task.Delay(options.DrainDelay, time, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The stop was hurried (its deadline, or a second signal): close now.
        }
    }

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        GatewayLog.Stopped(logger, relay.InFlight);
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
