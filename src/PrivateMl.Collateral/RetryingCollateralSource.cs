using System.Net;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral;

/// <summary>
/// Retries another source when it fails transiently: no connection, a broken-off response, a timeout, or HTTP 408,
/// 429 and 5xx. Anything else (404, malformed content) fails at once. The last failure is the one reported.
/// </summary>
public sealed class RetryingCollateralSource : ICollateralSource
{
    private readonly ICollateralSource inner;
    private readonly TimeProvider time;

    public RetryingCollateralSource(ICollateralSource inner, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(time);
        this.inner = inner;
        this.time = time;
    }

    /// <summary>Attempts in all, the first included.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>Delay before the second attempt; it doubles for each further one.</summary>
    public TimeSpan InitialDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    public async Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
    {
        var delay = InitialDelay;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await inner.GetCollateralAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (AttestationException ex) when (attempt < MaxAttempts && IsTransient(ex))
            {
                if (delay > TimeSpan.Zero)
                {
                    await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
                }

                delay *= 2;
            }
        }
    }

    internal static bool IsTransient(AttestationException ex) =>
        ex.Code == ErrorCode.CollateralUnavailable && ex.InnerException switch
        {
            HttpRequestException { StatusCode: null } => true,
            HttpRequestException { StatusCode: { } status } => status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500,
            IOException or TimeoutException => true,
            _ => false,
        };
}
