using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx;

/// <summary>What a TCB requirement compares.</summary>
public enum TcbComponentKind
{
    /// <summary>One of the 16 SGX TCB components from the PCK certificate.</summary>
    SgxComponent,

    /// <summary>PCESVN from the PCK certificate.</summary>
    PceSvn,

    /// <summary>One of the 16 TEE_TCB_SVN bytes of a TD report.</summary>
    TdxComponent,

    /// <summary>The TDX module SVN (TEE_TCB_SVN byte 0) against the module identity levels.</summary>
    TdxModuleSvn,

    /// <summary>The QE report ISVSVN against the QE identity levels.</summary>
    QeIsvSvn,
}

/// <summary>One component below what a TCB level requires.</summary>
/// <param name="Kind">What is compared.</param>
/// <param name="Index">Zero-based index within its array (0 for single values).</param>
/// <param name="Name">The component's name from the collateral ("SEAMLDR ACM", "TDX Module", …) or a generic one.</param>
/// <param name="Actual">The platform's value.</param>
/// <param name="Required">The level's minimum.</param>
public sealed record TcbComponentShortfall(TcbComponentKind Kind, int Index, string Name, int Actual, int Required)
{
    public override string ToString() => Kind switch
    {
        TcbComponentKind.SgxComponent => $"SGX TCB component {Index + 1}{Label} is {Actual}, needs {Required}",
        TcbComponentKind.TdxComponent => $"TEE_TCB_SVN[{Index}]{Label} is {Actual}, needs {Required}",
        TcbComponentKind.PceSvn => $"PCESVN is {Actual}, needs {Required}",
        TcbComponentKind.TdxModuleSvn => $"TDX module SVN is {Actual}, needs {Required}",
        _ => $"QE ISVSVN is {Actual}, needs {Required}",
    };

    private string Label => Name.StartsWith("SGX component", StringComparison.Ordinal) || Name.StartsWith("TDX component", StringComparison.Ordinal) ? string.Empty : $" ({Name})";
}

/// <summary>The TCB level (platform, TDX module or QE) a quote matched.</summary>
/// <param name="Index">Position in the collateral's level list (after sorting highest first).</param>
/// <param name="Status">The level's status.</param>
/// <param name="TcbDate">The level's tcbDate.</param>
/// <param name="AdvisoryIds">The level's advisory IDs, in collateral order.</param>
public sealed record TcbLevelMatch(int Index, TcbStatus Status, DateTimeOffset TcbDate, IReadOnlyList<string> AdvisoryIds);

/// <summary>
/// The outcome of <see cref="DcapVerifier.Verify(ReadOnlySpan{byte}, Tdx.Collateral.DcapCollateral, DateTimeOffset)"/>:
/// every check in the order it ran, the TCB statuses (platform, TDX module, QE and merged) with their advisories,
/// and what was parsed. Authenticity only: whether the status is acceptable is the policy's decision
/// (<c>Attestation/Policy</c>); only <see cref="TcbStatus.Revoked"/> fails here.
/// </summary>
public sealed record QuoteVerificationResult
{
    /// <summary>Every check in order. Checks that depend on a failed one are <see cref="CheckOutcome.Skipped"/>.</summary>
    public required IReadOnlyList<CheckResult> Checks { get; init; }

    /// <summary>The instant the verification was evaluated at.</summary>
    public required DateTimeOffset VerifiedAt { get; init; }

    /// <summary>True when the chain ends in a root other than Intel's (only possible with <see cref="DcapVerifierOptions.AllowSimulated"/>).</summary>
    public bool IsSimulated { get; init; }

    /// <summary>The parsed quote; null when parsing failed.</summary>
    public TdxQuote? Quote { get; init; }

    /// <summary>The PCK certificate's SGX extension; null when it could not be read.</summary>
    public PckExtensions? Pck { get; init; }

    /// <summary>Which CA issued the PCK certificate.</summary>
    public PckCaType? PckCaType { get; init; }

    /// <summary>FMSPC from the PCK certificate, lower-case hex.</summary>
    public string? Fmspc => Pck?.FmspcHex;

    /// <summary>The merged status (platform, TDX module and QE); null when no status could be determined.</summary>
    public TcbStatus? Status { get; init; }

    /// <summary>Status of the matched platform TCB level.</summary>
    public TcbStatus? PlatformTcbStatus { get; init; }

    /// <summary>Status of the matched TDX module identity level (TDX with module version &gt; 0 only).</summary>
    public TcbStatus? TdxModuleTcbStatus { get; init; }

    /// <summary>Status of the matched QE identity level.</summary>
    public TcbStatus? QeTcbStatus { get; init; }

    /// <summary>Advisory IDs of the platform, QE and module levels, without duplicates, platform first.</summary>
    public IReadOnlyList<string> AdvisoryIds { get; init; } = [];

    public TcbLevelMatch? PlatformTcbLevel { get; init; }

    public TcbLevelMatch? TdxModuleTcbLevel { get; init; }

    public TcbLevelMatch? QeTcbLevel { get; init; }

    /// <summary>TD 1.5 only: the merged status evaluated with TEE_TCB_SVN2 (the TCB after TD-preserving updates).</summary>
    public TcbStatus? CurrentTcbStatus { get; init; }

    /// <summary>
    /// TD 1.5 only: the TD was launched on an OutOfDate TCB but its current TCB is not OutOfDate (Intel's
    /// TDRelaunchAdvised); <see cref="Status"/> stays the launch status.
    /// </summary>
    public bool TdRelaunchAdvised { get; init; }

    /// <summary>The earliest tcbDate among the matched levels.</summary>
    public DateTimeOffset? TcbDate { get; init; }

    /// <summary>
    /// When no level matched: what falls short of the least demanding level. When a level matched but is not
    /// UpToDate: empty (see <see cref="ShortfallsToUpToDate"/>).
    /// </summary>
    public IReadOnlyList<TcbComponentShortfall> Shortfalls { get; init; } = [];

    /// <summary>
    /// What falls short of the first UpToDate platform level, or of the highest level when the TCB info lists no
    /// UpToDate level (empty when the matched level is that level).
    /// </summary>
    public IReadOnlyList<TcbComponentShortfall> ShortfallsToUpToDate { get; init; } = [];

    /// <summary>tcbEvaluationDataNumber of the TCB info used.</summary>
    public int? TcbEvaluationDataNumber { get; init; }

    /// <summary>issueDate of the TCB info used.</summary>
    public DateTimeOffset? TcbInfoIssueDate { get; init; }

    /// <summary>issueDate of the QE identity used.</summary>
    public DateTimeOffset? QeIdentityIssueDate { get; init; }

    /// <summary>True when every check passed or was not applicable, and a TCB status other than Revoked was found.</summary>
    public bool Accepted => Status is not null and not TcbStatus.Revoked && !Checks.Any(c => c.Outcome == CheckOutcome.Failed);

    /// <summary>The first failed check, if any.</summary>
    public CheckResult? FirstFailure => Checks.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed);

    /// <summary>The code of the first failed check, if any.</summary>
    public ErrorCode? Error => FirstFailure?.Code;

    /// <summary>Throws <see cref="AttestationException"/> with the first failure's code when not accepted.</summary>
    public QuoteVerificationResult ThrowIfNotAccepted()
    {
        if (!Accepted)
        {
            var failure = FirstFailure;
            throw new AttestationException(failure?.Code ?? ErrorCode.TcbLevelNotFound, failure?.Detail ?? "no TCB status was determined");
        }

        return this;
    }
}
