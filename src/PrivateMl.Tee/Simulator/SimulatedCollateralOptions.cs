using PrivateMl.Attestation.Verification;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// One TCB level of simulated TCB info or QE identity, described relative to the simulated platform: with offsets 0 the
/// level equals the platform exactly (so it matches); a positive offset makes the level demand more than the platform
/// has (so it does not match); a negative one makes an older level (clamped at 0).
/// </summary>
public sealed record SimulatedTcbLevel
{
    public TcbStatus Status { get; init; } = TcbStatus.UpToDate;

    public IReadOnlyList<string> AdvisoryIds { get; init; } = [];

    public DateTimeOffset TcbDate { get; init; } = new(2024, 3, 13, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Added to every SGX and TDX TCB component (TCB info) or to the ISVSVN (QE identity, TDX module).</summary>
    public int SvnOffset { get; init; }

    /// <summary>Added to the PCESVN (TCB info platform levels only).</summary>
    public int PceSvnOffset { get; init; }

    /// <summary>Writes this string as tcbStatus instead of <see cref="Status"/> (e.g. an unknown status).</summary>
    public string? StatusText { get; init; }
}

/// <summary>How to build the simulated TCB info (TDX, version 3).</summary>
public sealed record TcbInfoOptions
{
    public string Id { get; init; } = "TDX";

    public int Version { get; init; } = 3;

    public DateTimeOffset? IssueDate { get; init; }

    public DateTimeOffset? NextUpdate { get; init; }

    /// <summary>FMSPC written in the TCB info (6 bytes); the platform's by default.</summary>
    public ReadOnlyMemory<byte>? Fmspc { get; init; }

    /// <summary>PCE-ID written in the TCB info (2 bytes); the platform's by default.</summary>
    public ReadOnlyMemory<byte>? PceId { get; init; }

    public int TcbEvaluationDataNumber { get; init; } = 17;

    /// <summary>Platform TCB levels, highest first. Default: one level matching the platform (UpToDate) and an older one.</summary>
    public IReadOnlyList<SimulatedTcbLevel> Levels { get; init; } =
    [
        new SimulatedTcbLevel(),
        new SimulatedTcbLevel
        {
            Status = TcbStatus.OutOfDate,
            PceSvnOffset = -6,
            TcbDate = new DateTimeOffset(2018, 1, 4, 0, 0, 0, TimeSpan.Zero),
            AdvisoryIds = ["INTEL-SA-00106", "INTEL-SA-00115"],
        },
    ];

    /// <summary>Levels of the TDX module identity selected by TEE_TCB_SVN[1] (ISVSVN = TEE_TCB_SVN[0] + offset).</summary>
    public IReadOnlyList<SimulatedTcbLevel> ModuleLevels { get; init; } =
    [
        new SimulatedTcbLevel(),
        new SimulatedTcbLevel { Status = TcbStatus.OutOfDate, SvnOffset = -2, TcbDate = new DateTimeOffset(2023, 8, 9, 0, 0, 0, TimeSpan.Zero) },
    ];

    /// <summary>Leaves tdxModuleIdentities out.</summary>
    public bool OmitModuleIdentities { get; init; }

    /// <summary>Overrides the id of the module identity (default "TDX_" + TEE_TCB_SVN[1] as two hex digits).</summary>
    public string? ModuleIdentityId { get; init; }

    /// <summary>MRSIGNER of the TDX module (48 bytes); the profile's MR_SIGNER_SEAM by default.</summary>
    public ReadOnlyMemory<byte>? ModuleMrSigner { get; init; }

    /// <summary>Number of entries in each sgxtcbcomponents / tdxtcbcomponents array (16 is correct).</summary>
    public int ComponentCount { get; init; } = 16;

    public bool CorruptSignature { get; init; }

    public bool SignedByUnrelatedKey { get; init; }

    /// <summary>
    /// Levels for a platform whose matching level has <paramref name="status"/> (and advisories): an UpToDate level the
    /// platform does not reach, then the platform's own level.
    /// </summary>
    public static IReadOnlyList<SimulatedTcbLevel> LevelsForPlatformStatus(TcbStatus status, params string[] advisoryIds) =>
        status == TcbStatus.UpToDate
            ? [new SimulatedTcbLevel { AdvisoryIds = advisoryIds }]
            : [new SimulatedTcbLevel { SvnOffset = 1 }, new SimulatedTcbLevel { Status = status, AdvisoryIds = advisoryIds }];
}

/// <summary>How to build the simulated QE identity (TD_QE, version 2).</summary>
public sealed record QeIdentityOptions
{
    public string Id { get; init; } = "TD_QE";

    public int Version { get; init; } = 2;

    public DateTimeOffset? IssueDate { get; init; }

    public DateTimeOffset? NextUpdate { get; init; }

    public int TcbEvaluationDataNumber { get; init; } = 17;

    /// <summary>MRSIGNER written in the identity (32 bytes); the simulated QE's by default.</summary>
    public ReadOnlyMemory<byte>? MrSigner { get; init; }

    public ushort? IsvProdId { get; init; }

    /// <summary>attributes (16 bytes); the QE's attributes under the mask by default.</summary>
    public ReadOnlyMemory<byte>? Attributes { get; init; }

    /// <summary>QE TCB levels, highest first (ISVSVN = the QE's ISVSVN + offset).</summary>
    public IReadOnlyList<SimulatedTcbLevel> Levels { get; init; } = [new SimulatedTcbLevel()];

    public bool CorruptSignature { get; init; }

    public bool SignedByUnrelatedKey { get; init; }
}

/// <summary>How to build a full simulated collateral set.</summary>
public sealed record SimulatedCollateralOptions
{
    public static SimulatedCollateralOptions Default { get; } = new();

    /// <summary>How long TCB info, QE identity and both CRLs stay current (nextUpdate − issueDate).</summary>
    public TimeSpan Validity { get; init; } = TimeSpan.FromDays(30);

    /// <summary>How far before "now" the collateral is issued.</summary>
    public TimeSpan Backdate { get; init; } = TimeSpan.FromHours(1);

    public TcbInfoOptions TcbInfo { get; init; } = new();

    public QeIdentityOptions QeIdentity { get; init; } = new();

    public SimulatedCrlOptions RootCaCrl { get; init; } = SimulatedCrlOptions.Default;

    public SimulatedCrlOptions PckCrl { get; init; } = SimulatedCrlOptions.Default;
}
