using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Attestation.Tdx;

/// <summary>
/// Offline DCAP verification of TDX and SGX quotes: a pure function of quote bytes, collateral and time.
/// Thread-safe; one instance may be shared.
/// </summary>
public sealed partial class DcapVerifier
{
    public DcapVerifier()
        : this(new DcapVerifierOptions())
    {
    }

    public DcapVerifier(DcapVerifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.TrustsIntelRoot && !options.AllowSimulated)
        {
            throw new ArgumentException("a trust anchor other than the Intel SGX Root CA requires AllowSimulated = true", nameof(options));
        }

        if (options.CollateralCacheCapacity < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "CollateralCacheCapacity must not be negative");
        }

        Options = options;
    }

    public DcapVerifierOptions Options { get; }

    /// <summary>Verifies a quote against its collateral at the instant <paramref name="now"/>.</summary>
    public QuoteVerificationResult Verify(ReadOnlySpan<byte> quote, DcapCollateral collateral, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(collateral);
        throw new NotSupportedException("DcapVerifier.Verify is being implemented on branch verify");
    }
}
