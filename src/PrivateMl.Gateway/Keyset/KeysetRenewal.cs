using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway.Operations;

namespace PrivateMl.Gateway.Keyset;

/// <summary>
/// Keeps the attested keyset from expiring under a gateway that runs longer than <see cref="GatewayOptions.KeysetLifetime"/>:
/// an expired keyset makes verifiers reject every report and receipt and the gateway refuse every E2EE request. When a
/// third of the lifetime is left, the keyset is renewed — the same keys with a new <c>not_after</c> — so a client that
/// attested the old digest keeps its keys, and the next report quotes the new digest.
/// </summary>
internal sealed class KeysetRenewal(GatewayOptions options, GatewayKeysetHolder holder, TimeProvider time, ILogger<KeysetRenewal> logger) : BackgroundService
{
    /// <summary>Task.Delay takes at most ~49 days; long lifetimes are waited out a day at a time.</summary>
    private static readonly TimeSpan LongestWait = TimeSpan.FromDays(1);

    /// <summary>When a keyset valid until <paramref name="notAfter"/> is renewed: a third of the lifetime before it.</summary>
    internal static DateTimeOffset RenewalDue(long notAfter, TimeSpan lifetime) =>
        DateTimeOffset.FromUnixTimeSeconds(notAfter) - (lifetime / 3);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // GatewayStartup, registered before this service, sets the keyset during its start; without one there is
        // nothing to keep valid, and ending quietly would let it expire unnoticed.
        if (!holder.IsReady)
        {
            throw new InvalidOperationException("the keyset renewal started before the gateway's keyset was made");
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            var current = holder.Keyset;
            var wait = RenewalDue(current.Public.NotAfter, options.KeysetLifetime) - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait < LongestWait ? wait : LongestWait, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            var renewed = current.Renewed(time.GetUtcNow(), options.KeysetLifetime);
            holder.Set(renewed);
            GatewayLog.KeysetRenewed(logger, current.Public.Digest, renewed.Public.Digest, DateTimeOffset.FromUnixTimeSeconds(renewed.Public.NotAfter));
        }
    }
}
