using System.Collections.Frozen;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Policy;

/// <summary>
/// What a relying party accepts, applied after authenticity (<see cref="PolicyEvaluator"/>). Strict by default: only
/// <see cref="TcbStatus.UpToDate"/>, no debug TDs, no simulated evidence; every expectation left unset is reported as
/// Skipped, never as passed. Immutable; byte lengths are checked when a value is set (and, for files, by
/// <see cref="AttestationPolicyJson"/> with a message naming the field), so evaluation never meets a malformed policy.
/// </summary>
public sealed record AttestationPolicy
{
    public const int MeasurementLength = 48;
    public const int ReportDataLength = 64;
    public const int TdAttributesLength = 8;
    public const int XfamLength = 8;
    public const int TeeTcbSvnLength = 16;

    /// <summary>The default policy: UpToDate only, DEBUG forbidden, simulated evidence refused, nothing else expected.</summary>
    public static AttestationPolicy Default { get; } = new();

    /// <summary>Free text naming the policy (shown in reports); not evaluated.</summary>
    public string? Description { get; init; }

    /// <summary>TCB statuses accepted. Default: UpToDate only. <see cref="TcbStatus.Revoked"/> can never be accepted.</summary>
    public IReadOnlySet<TcbStatus> AcceptedTcbStatuses
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.Count == 0)
            {
                throw new ArgumentException("at least one TCB status must be accepted", nameof(AcceptedTcbStatuses));
            }

            if (value.Contains(TcbStatus.Revoked))
            {
                throw new ArgumentException("a Revoked TCB can never be accepted", nameof(AcceptedTcbStatuses));
            }

            field = value.ToFrozenSet();
        }
    } = FrozenSet.Create(TcbStatus.UpToDate);

    /// <summary>
    /// When set, every advisory ID the verifier reports for the platform, TDX module and QE levels must be in this
    /// list (exact, case-sensitive IDs such as <c>INTEL-SA-00837</c>); null admits whatever advisories come with an
    /// accepted status.
    /// </summary>
    public IReadOnlySet<string>? AllowedAdvisoryIds
    {
        get;
        init => field = value?.ToFrozenSet(StringComparer.Ordinal);
    }

    /// <summary>Lowest accepted <c>tcbEvaluationDataNumber</c> of the TCB info (null: not checked).</summary>
    public int? MinimumTcbEvaluationDataNumber
    {
        get;
        init => field = value is < 0 ? throw new ArgumentOutOfRangeException(nameof(MinimumTcbEvaluationDataNumber)) : value;
    }

    /// <summary>Admit TDs (and SGX enclaves) under debug. Default false: their memory is readable by the host.</summary>
    public bool AllowDebug { get; init; }

    /// <summary>Admit evidence signed under a simulated root. Default false; results then say SIMULATED.</summary>
    public bool AllowSimulated { get; init; }

    /// <summary>Exact TD_ATTRIBUTES (8 bytes, wire order).</summary>
    public ReadOnlyMemory<byte>? TdAttributes { get; init => field = Bytes(value, TdAttributesLength, nameof(TdAttributes)); }

    /// <summary>Exact XFAM (8 bytes, wire order).</summary>
    public ReadOnlyMemory<byte>? Xfam { get; init => field = Bytes(value, XfamLength, nameof(Xfam)); }

    /// <summary>Accepted MR_SEAM values (TDX module measurements, 48 bytes each); null: not checked.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>>? MrSeamAllowList
    {
        get;
        init
        {
            if (value is null)
            {
                field = null;
                return;
            }

            if (value.Count == 0)
            {
                throw new ArgumentException("an empty MR_SEAM allow-list would admit nothing; leave it unset instead", nameof(MrSeamAllowList));
            }

            field = [.. value.Select(v => Bytes(v, MeasurementLength, nameof(MrSeamAllowList))!.Value)];
        }
    }

    /// <summary>Component-wise minimum of TEE_TCB_SVN (16 bytes).</summary>
    public ReadOnlyMemory<byte>? MinimumTeeTcbSvn { get; init => field = Bytes(value, TeeTcbSvnLength, nameof(MinimumTeeTcbSvn)); }

    public ReadOnlyMemory<byte>? MrTd { get; init => field = Bytes(value, MeasurementLength, nameof(MrTd)); }

    public ReadOnlyMemory<byte>? Rtmr0 { get; init => field = Bytes(value, MeasurementLength, nameof(Rtmr0)); }

    public ReadOnlyMemory<byte>? Rtmr1 { get; init => field = Bytes(value, MeasurementLength, nameof(Rtmr1)); }

    public ReadOnlyMemory<byte>? Rtmr2 { get; init => field = Bytes(value, MeasurementLength, nameof(Rtmr2)); }

    public ReadOnlyMemory<byte>? Rtmr3 { get; init => field = Bytes(value, MeasurementLength, nameof(Rtmr3)); }

    public ReadOnlyMemory<byte>? MrConfigId { get; init => field = Bytes(value, MeasurementLength, nameof(MrConfigId)); }

    public ReadOnlyMemory<byte>? MrOwner { get; init => field = Bytes(value, MeasurementLength, nameof(MrOwner)); }

    public ReadOnlyMemory<byte>? MrOwnerConfig { get; init => field = Bytes(value, MeasurementLength, nameof(MrOwnerConfig)); }

    /// <summary>Exact report_data (64 bytes), e.g. the hash binding a nonce and the node's key.</summary>
    public ReadOnlyMemory<byte>? ReportData { get; init => field = Bytes(value, ReportDataLength, nameof(ReportData)); }

    /// <summary>Loads and validates a policy file (see <see cref="AttestationPolicyJson"/>).</summary>
    public static AttestationPolicy Load(string path) => AttestationPolicyJson.Load(path);

    /// <summary>Copies the bytes (a caller's later writes cannot change the policy) after checking the length.</summary>
    private static ReadOnlyMemory<byte>? Bytes(ReadOnlyMemory<byte>? value, int length, string name)
    {
        if (value is not { } bytes)
        {
            return null;
        }

        return bytes.Length == length
            ? bytes.ToArray()
            : throw new ArgumentException($"{name} must be {length} bytes, got {bytes.Length}", name);
    }
}
