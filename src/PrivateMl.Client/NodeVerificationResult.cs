using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Client;

/// <summary>The one answer: the node can be trusted, or it cannot.</summary>
public enum NodeVerdict
{
    Trusted,
    Untrusted,
}

/// <summary>
/// Everything <see cref="NodeVerifier"/> checked, in order, each Passed / Failed (with its <see cref="ErrorCode"/>) /
/// Skipped (with why), and one verdict: <see cref="NodeVerdict.Trusted"/> only when no check failed and the quote
/// verified. <see cref="IsSimulated"/> results are never evidence of real hardware.
/// </summary>
public sealed record NodeVerificationResult
{
    public required NodeVerdict Verdict { get; init; }

    public required IReadOnlyList<CheckResult> Checks { get; init; }

    public required DateTimeOffset VerifiedAt { get; init; }

    /// <summary>The nonce this run sent (32 bytes).</summary>
    public required ReadOnlyMemory<byte> Nonce { get; init; }

    public bool IsSimulated { get; init; }

    public string? BaseAddress { get; init; }

    /// <summary>The report bytes exactly as received.</summary>
    public ReadOnlyMemory<byte> ReportJson { get; init; }

    public NodeReport? Report { get; init; }

    public DcapCollateral? Collateral { get; init; }

    public QuoteVerificationResult? Quote { get; init; }

    public DstackAppIdentity? AppIdentity { get; init; }

    public GpuPayloadVerificationResult? Gpu { get; init; }

    /// <summary>
    /// The ACI workload keyset the quote binds together with this run's nonce (only for
    /// <see cref="NodeReportFormat.Aci"/>, and only when that binding check passed).
    /// </summary>
    public PrivateMl.E2ee.Aci.WorkloadKeyset? Keyset { get; init; }

    public bool Trusted => Verdict == NodeVerdict.Trusted;

    /// <summary>The signing address this run attested (only meaningful when <see cref="Trusted"/>).</summary>
    public string? SigningAddress => Report?.SigningAddress;

    public IEnumerable<CheckResult> Failures => Checks.Where(c => c.Outcome == CheckOutcome.Failed);

    public CheckResult? FirstFailure => Failures.FirstOrDefault();

    /// <summary>The check of this name, or null.</summary>
    public CheckResult? Find(string name) => Checks.FirstOrDefault(c => c.Name == name);
}
