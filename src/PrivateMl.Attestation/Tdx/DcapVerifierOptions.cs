using PrivateMl.Attestation.Trust;

namespace PrivateMl.Attestation.Tdx;

/// <summary>
/// Options for <see cref="DcapVerifier"/>. Strict by default: the trust anchor is the embedded Intel SGX Root CA.
/// Trusting any other root (a simulator's or a test CA's) needs <see cref="AllowSimulated"/>, and then every result says
/// <see cref="QuoteVerificationResult.IsSimulated"/> and its trust-anchor check reads "SIMULATED".
/// </summary>
public sealed record DcapVerifierOptions
{
    /// <summary>DER of the root certificate every chain must end in. Defaults to the Intel SGX Root CA.</summary>
    public ReadOnlyMemory<byte> TrustedRootCertificate { get; init; } = IntelSgxRootCa.ToArray();

    /// <summary>
    /// Must be true for a <see cref="TrustedRootCertificate"/> other than Intel's. Results are then marked simulated:
    /// they prove only that the evidence was signed under that root.
    /// </summary>
    public bool AllowSimulated { get; init; }

    /// <summary>
    /// How many verified collateral sets to keep, keyed by the SHA-256 of their exact bytes (0 disables the cache).
    /// The time-dependent checks are still evaluated on every call.
    /// </summary>
    public int CollateralCacheCapacity { get; init; } = 16;

    /// <summary>True when the trust anchor is the Intel SGX Root CA.</summary>
    public bool TrustsIntelRoot => IntelSgxRootCa.Is(TrustedRootCertificate.Span);
}
