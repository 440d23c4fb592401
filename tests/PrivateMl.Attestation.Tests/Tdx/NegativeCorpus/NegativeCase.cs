using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Attestation.Tests.Tdx.NegativeCorpus;

/// <summary>
/// One generated negative vector: how to build the simulated platform, quote and collateral (each through the
/// simulator's defect options, nothing copied), when to verify, and the error code the verifier must reject it with.
/// </summary>
public sealed record NegativeCase(string Name, ErrorCode Expected)
{
    /// <summary>Platform (PKI, QE, TD profile) options, including certificate and SGX-extension defects.</summary>
    public SimulatedPlatformOptions Platform { get; init; } = new();

    /// <summary>Quote defects, given the platform (for values such as its certificates).</summary>
    public Func<SimulatedTdxPlatform, QuoteDefects> Quote { get; init; } = _ => QuoteDefects.None;

    /// <summary>Collateral options, given the platform (for serials to revoke and the like).</summary>
    public Func<SimulatedTdxPlatform, SimulatedCollateralOptions> Collateral { get; init; } = _ => SimulatedCollateralOptions.Default;

    /// <summary>A last edit of the built collateral (swapped chains, re-signed JSON, …).</summary>
    public Func<SimulatedTdxPlatform, DcapCollateral, DcapCollateral> EditCollateral { get; init; } = (_, c) => c;

    /// <summary>A last edit of the built quote bytes (tampering after signing, a quote from another platform, …).</summary>
    public Func<SimulatedTdxPlatform, byte[], byte[]> EditQuote { get; init; } = (_, q) => q;

    /// <summary>Verification time relative to <see cref="CorpusFixture.Now"/>, the time everything is issued at.</summary>
    public TimeSpan VerifyOffset { get; init; }

    public override string ToString() => Name;
}
