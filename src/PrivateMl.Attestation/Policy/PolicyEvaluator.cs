using System.Security.Cryptography;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Policy;

/// <summary>
/// Applies an <see cref="AttestationPolicy"/> to a <see cref="QuoteVerificationResult"/>. A pure function; every
/// check runs (no short-circuit), so a rejection lists everything that is wrong. Authenticity is an input here, not
/// something decided here: evidence that did not verify fails the <c>authenticity</c> check and so the policy.
/// </summary>
public static class PolicyEvaluator
{
    public static PolicyResult Evaluate(AttestationPolicy policy, QuoteVerificationResult verification)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(verification);

        var td = verification.Quote?.TdReport;
        var sgx = verification.Quote?.SgxReport;
        var checks = new List<CheckResult>
        {
            Authenticity(verification),
            Simulated(policy, verification),
            TcbStatusCheck(policy, verification),
            Advisories(policy, verification),
            TcbEvaluationDataNumber(policy, verification),
            Debug(policy, verification, td, sgx),
            Exact("policy.td.attributes", "TD_ATTRIBUTES", policy.TdAttributes, td?.TdAttributes, ErrorCode.TdAttributesNotAccepted, verification),
            Exact("policy.td.xfam", "XFAM", policy.Xfam, td?.Xfam, ErrorCode.XfamNotAccepted, verification),
            MrSeam(policy, td, verification),
            TeeTcbSvn(policy, td, verification),
            Exact("policy.td.mrtd", "MR_TD", policy.MrTd, td?.MrTd, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.rtmr0", "RTMR0", policy.Rtmr0, td?.Rtmr0, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.rtmr1", "RTMR1", policy.Rtmr1, td?.Rtmr1, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.rtmr2", "RTMR2", policy.Rtmr2, td?.Rtmr2, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.rtmr3", "RTMR3", policy.Rtmr3, td?.Rtmr3, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.mrconfigid", "MR_CONFIG_ID", policy.MrConfigId, td?.MrConfigId, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.mrowner", "MR_OWNER", policy.MrOwner, td?.MrOwner, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.td.mrownerconfig", "MR_OWNER_CONFIG", policy.MrOwnerConfig, td?.MrOwnerConfig, ErrorCode.MeasurementMismatch, verification),
            Exact("policy.report_data", "report_data", policy.ReportData, verification.Quote?.ReportData, ErrorCode.ReportDataMismatch, verification, tdOnly: false),
        };

        var verdict = checks.Any(c => c.Outcome == CheckOutcome.Failed) ? PolicyVerdict.Rejected : PolicyVerdict.Accepted;
        return new PolicyResult(verdict, checks);
    }

    private static CheckResult Authenticity(QuoteVerificationResult v)
    {
        const string Name = "policy.authenticity";
        if (v.Accepted)
        {
            return CheckResult.Pass(Name, "the quote and its collateral verified" + (v.IsSimulated ? " (SIMULATED root)" : " (Intel SGX Root CA)"));
        }

        var failure = v.FirstFailure;
        if (failure is null && v.Status == TcbStatus.Revoked)
        {
            return CheckResult.Fail(Name, ErrorCode.TcbRevoked, "the platform's TCB is Revoked" + Parts(v));
        }

        return failure is null
            ? CheckResult.Fail(Name, ErrorCode.TcbLevelNotFound, "verification determined no TCB status" + Behind(v))
            : CheckResult.Fail(Name, failure.Code ?? ErrorCode.MalformedInput, $"verification failed at '{failure.Name}': {failure.Detail}");
    }

    private static CheckResult Simulated(AttestationPolicy policy, QuoteVerificationResult v)
    {
        const string Name = "policy.simulated";
        if (!v.IsSimulated)
        {
            return CheckResult.Pass(Name, "not simulated: the chain ends in the Intel SGX Root CA");
        }

        return policy.AllowSimulated
            ? CheckResult.Pass(Name, "SIMULATED evidence, admitted because the policy sets allowSimulated")
            : CheckResult.Fail(Name, ErrorCode.SimulatedEvidenceNotTrusted, "SIMULATED evidence: signed under a simulated root, which this policy does not trust (allowSimulated: false)");
    }

    private static CheckResult TcbStatusCheck(AttestationPolicy policy, QuoteVerificationResult v)
    {
        const string Name = "policy.tcb.status";
        var accepted = string.Join(", ", policy.AcceptedTcbStatuses.Order());
        if (v.Status is not { } status)
        {
            return CheckResult.Fail(Name, ErrorCode.TcbStatusNotAccepted, $"TCB status: expected one of [{accepted}], actual: none (no TCB level matched){Behind(v)}");
        }

        var parts = Parts(v);
        var advisories = v.AdvisoryIds.Count > 0 ? $"; advisories: {string.Join(", ", v.AdvisoryIds)}" : string.Empty;
        if (policy.AcceptedTcbStatuses.Contains(status))
        {
            return CheckResult.Pass(Name, $"TCB status {status} is accepted ([{accepted}]){parts}{advisories}");
        }

        return CheckResult.Fail(Name, ErrorCode.TcbStatusNotAccepted, $"TCB status: expected one of [{accepted}], actual: {status}{parts}{advisories}{Behind(v)}");
    }

    private static CheckResult Advisories(AttestationPolicy policy, QuoteVerificationResult v)
    {
        const string Name = "policy.tcb.advisories";
        if (policy.AllowedAdvisoryIds is not { } allowed)
        {
            return CheckResult.Skip(Name, v.AdvisoryIds.Count == 0
                ? "no advisory allow-list in the policy (and no advisories reported)"
                : $"no advisory allow-list in the policy; reported: {string.Join(", ", v.AdvisoryIds)}");
        }

        var refused = v.AdvisoryIds.Where(id => !allowed.Contains(id)).ToList();
        var list = $"[{string.Join(", ", allowed.Order(StringComparer.Ordinal))}]";
        return refused.Count == 0
            ? CheckResult.Pass(Name, v.AdvisoryIds.Count == 0 ? "no advisories reported" : $"every advisory is allowed: {string.Join(", ", v.AdvisoryIds)} ⊆ {list}")
            : CheckResult.Fail(Name, ErrorCode.AdvisoryNotAccepted, $"advisories: expected only {list}, actual: {string.Join(", ", v.AdvisoryIds)}; not allowed: {string.Join(", ", refused)}");
    }

    private static CheckResult TcbEvaluationDataNumber(AttestationPolicy policy, QuoteVerificationResult v)
    {
        const string Name = "policy.tcb.evaluationDataNumber";
        if (policy.MinimumTcbEvaluationDataNumber is not { } minimum)
        {
            return CheckResult.Skip(Name, "no minimum tcbEvaluationDataNumber in the policy");
        }

        return v.TcbEvaluationDataNumber is { } actual && actual >= minimum
            ? CheckResult.Pass(Name, $"tcbEvaluationDataNumber {actual} ≥ {minimum}")
            : CheckResult.Fail(Name, ErrorCode.TcbStatusNotAccepted, $"tcbEvaluationDataNumber: expected ≥ {minimum}, actual: {v.TcbEvaluationDataNumber?.ToString() ?? "unknown"}");
    }

    private static CheckResult Debug(AttestationPolicy policy, QuoteVerificationResult v, TdReportBody? td, SgxReportBody? sgx)
    {
        const string Name = "policy.td.debug";
        if (td is null && sgx is null)
        {
            return CheckResult.Fail(Name, ErrorCode.DebugTdForbidden, "debug state: unknown (no parsed report body)");
        }

        var debug = td?.IsDebug ?? sgx!.IsDebug;
        var what = td is not null ? $"TD_ATTRIBUTES {Hex(td.TdAttributes)} ({Describe(td.Attributes)})" : "SGX enclave attributes";
        if (!debug)
        {
            return CheckResult.Pass(Name, $"not under debug: {what}");
        }

        return policy.AllowDebug
            ? CheckResult.Pass(Name, $"under DEBUG, admitted because the policy sets allowDebug: {what}")
            : CheckResult.Fail(Name, ErrorCode.DebugTdForbidden, $"debug: expected off, actual: on — {what}; a debug TD's memory is readable by the host");
    }

    private static CheckResult MrSeam(AttestationPolicy policy, TdReportBody? td, QuoteVerificationResult v)
    {
        const string Name = "policy.td.mrseam";
        if (policy.MrSeamAllowList is not { } list)
        {
            return CheckResult.Skip(Name, "no MR_SEAM allow-list in the policy");
        }

        if (td is null)
        {
            return NoTd(Name, "MR_SEAM", ErrorCode.MrSeamNotAccepted, v);
        }

        return list.Any(m => CryptographicOperations.FixedTimeEquals(m.Span, td.MrSeam.Span))
            ? CheckResult.Pass(Name, $"MR_SEAM {Hex(td.MrSeam)} is on the allow-list")
            : CheckResult.Fail(Name, ErrorCode.MrSeamNotAccepted, $"MR_SEAM: expected one of [{string.Join(", ", list.Select(m => Hex(m)))}], actual: {Hex(td.MrSeam)}");
    }

    private static CheckResult TeeTcbSvn(AttestationPolicy policy, TdReportBody? td, QuoteVerificationResult v)
    {
        const string Name = "policy.td.teeTcbSvn";
        if (policy.MinimumTeeTcbSvn is not { } minimum)
        {
            return CheckResult.Skip(Name, "no minimum TEE_TCB_SVN in the policy");
        }

        if (td is null)
        {
            return NoTd(Name, "TEE_TCB_SVN", ErrorCode.TeeTcbSvnTooLow, v);
        }

        var low = new List<string>();
        for (var i = 0; i < AttestationPolicy.TeeTcbSvnLength; i++)
        {
            if (td.TeeTcbSvn.Span[i] < minimum.Span[i])
            {
                low.Add($"byte {i} is {td.TeeTcbSvn.Span[i]}, needs ≥ {minimum.Span[i]}");
            }
        }

        return low.Count == 0
            ? CheckResult.Pass(Name, $"TEE_TCB_SVN {Hex(td.TeeTcbSvn)} ≥ {Hex(minimum)} component-wise")
            : CheckResult.Fail(Name, ErrorCode.TeeTcbSvnTooLow, $"TEE_TCB_SVN: expected ≥ {Hex(minimum)} component-wise, actual: {Hex(td.TeeTcbSvn)} ({string.Join("; ", low)})");
    }

    private static CheckResult Exact(string name, string field, ReadOnlyMemory<byte>? expected, ReadOnlyMemory<byte>? actual, ErrorCode code, QuoteVerificationResult v, bool tdOnly = true)
    {
        if (expected is not { } want)
        {
            return CheckResult.Skip(name, $"no expected {field} in the policy");
        }

        if (actual is not { } have)
        {
            return tdOnly ? NoTd(name, field, code, v) : CheckResult.Fail(name, code, $"{field}: expected {Hex(want)}, actual: none (the quote did not parse)");
        }

        return CryptographicOperations.FixedTimeEquals(want.Span, have.Span)
            ? CheckResult.Pass(name, $"{field} is {Hex(have)} as expected")
            : CheckResult.Fail(name, code, $"{field}: expected {Hex(want)}, actual: {Hex(have)}");
    }

    /// <summary>An expectation about a TD field that the evidence cannot meet: an SGX quote or an unparsed one. Fail closed.</summary>
    private static CheckResult NoTd(string name, string field, ErrorCode code, QuoteVerificationResult v) =>
        CheckResult.Fail(name, code, $"{field}: the policy expects a TD, actual: {(v.Quote is null ? "no parsed quote" : "an SGX quote (no TD report)")}");

    /// <summary>Which part (platform, TDX module, QE) holds which status, when they differ from the merged one.</summary>
    private static string Parts(QuoteVerificationResult v)
    {
        var parts = new List<string>();
        if (v.PlatformTcbStatus is { } p)
        {
            parts.Add($"platform {p}" + (v.PlatformTcbLevel is { } pl ? $" (level {pl.Index}, tcbDate {pl.TcbDate:yyyy-MM-dd})" : string.Empty));
        }

        if (v.TdxModuleTcbStatus is { } m)
        {
            parts.Add($"TDX module {m}");
        }

        if (v.QeTcbStatus is { } q)
        {
            parts.Add($"QE {q}");
        }

        return parts.Count == 0 ? string.Empty : $" ({string.Join(", ", parts)})";
    }

    /// <summary>How far behind the platform is: which components fall short of the level that would be UpToDate.</summary>
    private static string Behind(QuoteVerificationResult v)
    {
        if (v.Status is null && v.Shortfalls.Count > 0)
        {
            return $"; no TCB level matches: {string.Join("; ", v.Shortfalls)}";
        }

        if (v.ShortfallsToUpToDate.Count > 0)
        {
            return $"; to be UpToDate: {string.Join("; ", v.ShortfallsToUpToDate)}";
        }

        if (v.Status is { } s && s != TcbStatus.UpToDate)
        {
            return v.PlatformTcbStatus == TcbStatus.UpToDate
                ? "; the platform level is UpToDate, another part (TDX module or QE) is not"
                : "; the collateral has no UpToDate level for this platform's components";
        }

        return string.Empty;
    }

    private static string Describe(TdAttributes attributes)
    {
        var names = TdAttributeNames.Describe(attributes);
        return names.Count == 0 ? "none" : string.Join("|", names);
    }

    private static string Hex(ReadOnlyMemory<byte> bytes) => Convert.ToHexStringLower(bytes.Span);
}
