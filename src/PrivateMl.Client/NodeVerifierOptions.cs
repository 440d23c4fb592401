using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Policy;
using PrivateMl.Collateral;

namespace PrivateMl.Client;

/// <summary>Which report format to ask a node for.</summary>
public enum NodeReportFormat
{
    /// <summary>The seed proxy's: report_data = signing address (padded) ‖ nonce.</summary>
    Seed = 0,

    /// <summary>ACI (<c>format=aci</c>): report_data = sha256 of the statement over the workload keyset digest and the nonce.</summary>
    Aci = 1,
}

/// <summary>
/// How <see cref="NodeVerifier"/> decides. Strict by default: the Intel SGX Root CA only, <see cref="AttestationPolicy.Default"/>
/// (UpToDate, no debug), no simulated evidence. One instance may be shared across threads.
/// </summary>
public sealed record NodeVerifierOptions
{
    /// <summary>The policy applied to the verified quote. Default: <see cref="AttestationPolicy.Default"/>.</summary>
    public AttestationPolicy Policy { get; init; } = AttestationPolicy.Default;

    /// <summary>
    /// Admit evidence signed under a simulated root. Off by default; when on, the result says SIMULATED and proves only
    /// that the evidence was produced by that simulator. The policy's own <c>allowSimulated</c> also admits it.
    /// </summary>
    public bool AllowSimulated { get; init; }

    /// <summary>
    /// DER of the one simulated root to accept (e.g. the simulator's <c>root-ca</c>). Null: under
    /// <see cref="AllowSimulated"/>, the self-signed root the quote carries is used (still reported as SIMULATED).
    /// </summary>
    public ReadOnlyMemory<byte>? SimulatedRootCertificate { get; init; }

    /// <summary>Where DCAP collateral comes from (a cache, an offline bundle, a PCCS). Required to verify a quote.</summary>
    public ICollateralSource? Collateral { get; init; }

    /// <summary>The exact bytes of the app-compose.json the node should run; null: the compose hash is reported, not compared.</summary>
    public ReadOnlyMemory<byte>? ExpectedAppCompose { get; init; }

    /// <summary>
    /// The app id (20 bytes) the node must have measured. Unlike <see cref="ExpectedAppCompose"/> it follows the app
    /// across compose upgrades that its KMS admits; with <see cref="ExpectedKeyProviderIds"/> it says "this app's keys,
    /// from this KMS". Null: the app id is reported, not compared.
    /// </summary>
    public ReadOnlyMemory<byte>? ExpectedAppId { get; init; }

    /// <summary>
    /// The key providers the node's keys may come from, by the id its measured <c>key-provider</c> event names (for a
    /// KMS, the hex SPKI of its root CA, which <c>privateml kms serve</c> prints as the key-provider id). Null: the key
    /// provider is reported, not compared. Set: a node whose keys come from anywhere else — another KMS, local keys,
    /// or a log that does not replay — fails <c>app.key-provider</c>.
    /// </summary>
    public IReadOnlyCollection<string>? ExpectedKeyProviderIds { get; init; }

    /// <summary>Fail when the node sends no GPU evidence. Default false: missing evidence is "not checked".</summary>
    public bool RequireGpuEvidence { get; init; }

    /// <summary>Options for the local GPU evidence verifier (its AllowSimulated follows <see cref="AllowSimulated"/>).</summary>
    public GpuVerifierOptions Gpu { get; init; } = new();

    /// <summary>Which signing key's report to ask for: <c>ecdsa</c> (default) or <c>ed25519</c>.</summary>
    public string SigningAlgo { get; init; } = "ecdsa";

    /// <summary>
    /// <see cref="NodeReportFormat.Aci"/> asks for <c>format=aci</c> and checks that the quote binds the workload keyset
    /// (receipt and E2EE keys) and this run's nonce; the result's <see cref="NodeVerificationResult.Keyset"/> is then the
    /// attested keyset, the only keys an E2EE client may encrypt to.
    /// </summary>
    public NodeReportFormat ReportFormat { get; init; } = NodeReportFormat.Seed;

    /// <summary>Bearer token sent with the report request (the seed proxy requires one).</summary>
    public string? ApiKey { get; init; }

    /// <summary>Clock for verification time. Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Source of the 32-byte nonce. Default: <see cref="System.Security.Cryptography.RandomNumberGenerator"/>.</summary>
    public Func<byte[]>? NonceSource { get; init; }
}
