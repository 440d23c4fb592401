using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using static PrivateMl.Attestation.Tests.Policy.PolicyFixtures;

namespace PrivateMl.Attestation.Tests.Policy;

public sealed class PolicyEvaluatorTests
{
    [Fact]
    public void Accepts_UpToDateRealQuote_UnderDefaultPolicy_SkippingUnsetExpectations()
    {
        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default, Verified(RealTdxQuote(), TcbStatus.UpToDate));

        Assert.True(result.Accepted);
        Assert.Equal(CheckOutcome.Passed, result["policy.tcb.status"].Outcome);
        Assert.Equal(CheckOutcome.Passed, result["policy.td.debug"].Outcome);
        Assert.Equal(CheckOutcome.Skipped, result["policy.td.mrtd"].Outcome);
        Assert.Equal(CheckOutcome.Skipped, result["policy.report_data"].Outcome);
        Assert.Equal(CheckOutcome.Skipped, result["policy.tcb.advisories"].Outcome);
        Assert.Equal(19, result.Checks.Count);
    }

    [Fact]
    public void Rejects_OutOfDate_ByDefault_SayingHowFarBehind()
    {
        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default, Verified(RealTdxQuote(), TcbStatus.OutOfDate, "INTEL-SA-00960", "INTEL-SA-00982"));

        Assert.Equal(PolicyVerdict.Rejected, result.Verdict);
        var check = result["policy.tcb.status"];
        Assert.Equal(ErrorCode.TcbStatusNotAccepted, check.Code);
        Assert.Contains("actual: OutOfDate", check.Detail, StringComparison.Ordinal);
        Assert.Contains("SEAMLDR ACM", check.Detail, StringComparison.Ordinal); // which component …
        Assert.Contains("needs 5", check.Detail, StringComparison.Ordinal); // … and what UpToDate requires
        Assert.Contains("INTEL-SA-00960", check.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepts_OutOfDate_WhenThePolicyAllowsIt_ListingAdvisories()
    {
        var policy = new AttestationPolicy { AcceptedTcbStatuses = new HashSet<TcbStatus> { TcbStatus.UpToDate, TcbStatus.OutOfDate } };

        var result = PolicyEvaluator.Evaluate(policy, Verified(RealTdxQuote(), TcbStatus.OutOfDate, "INTEL-SA-00960", "INTEL-SA-00982"));

        Assert.True(result.Accepted);
        Assert.Contains("INTEL-SA-00960, INTEL-SA-00982", result["policy.tcb.status"].Detail, StringComparison.Ordinal);
        Assert.Contains("INTEL-SA-00982", result["policy.tcb.advisories"].Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "INTEL-SA-00960", "INTEL-SA-00982" }, true)]
    [InlineData(new[] { "INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-01036" }, true)]
    [InlineData(new[] { "INTEL-SA-00960" }, false)]
    [InlineData(new[] { "intel-sa-00960", "intel-sa-00982" }, false)]
    public void AdvisoryAllowList_AdmitsExactlyTheListed(string[] allowed, bool accepted)
    {
        var policy = new AttestationPolicy
        {
            AcceptedTcbStatuses = new HashSet<TcbStatus> { TcbStatus.OutOfDate },
            AllowedAdvisoryIds = new HashSet<string>(allowed),
        };

        var result = PolicyEvaluator.Evaluate(policy, Verified(RealTdxQuote(), TcbStatus.OutOfDate, "INTEL-SA-00960", "INTEL-SA-00982"));

        Assert.Equal(accepted, result.Accepted);
        Assert.Equal(accepted ? CheckOutcome.Passed : CheckOutcome.Failed, result["policy.tcb.advisories"].Outcome);
        if (!accepted)
        {
            Assert.Equal(ErrorCode.AdvisoryNotAccepted, result["policy.tcb.advisories"].Code);
        }
    }

    [Fact]
    public void Rejects_DebugTd_UnlessAllowed()
    {
        var debug = WithTd(RealTdxQuote(), td => td with { TdAttributes = new byte[] { 0x01, 0, 0, 0x10, 0, 0, 0, 0 } });

        var strict = PolicyEvaluator.Evaluate(AttestationPolicy.Default, Verified(debug, TcbStatus.UpToDate));
        var lenient = PolicyEvaluator.Evaluate(new AttestationPolicy { AllowDebug = true }, Verified(debug, TcbStatus.UpToDate));

        Assert.False(strict.Accepted);
        Assert.Equal(ErrorCode.DebugTdForbidden, strict["policy.td.debug"].Code);
        Assert.Contains("DEBUG", strict["policy.td.debug"].Detail, StringComparison.Ordinal);
        Assert.True(lenient.Accepted);
    }

    public static TheoryData<string, ErrorCode> Fields => new()
    {
        { "policy.td.attributes", ErrorCode.TdAttributesNotAccepted },
        { "policy.td.xfam", ErrorCode.XfamNotAccepted },
        { "policy.td.mrseam", ErrorCode.MrSeamNotAccepted },
        { "policy.td.mrtd", ErrorCode.MeasurementMismatch },
        { "policy.td.rtmr0", ErrorCode.MeasurementMismatch },
        { "policy.td.rtmr1", ErrorCode.MeasurementMismatch },
        { "policy.td.rtmr2", ErrorCode.MeasurementMismatch },
        { "policy.td.rtmr3", ErrorCode.MeasurementMismatch },
        { "policy.td.mrconfigid", ErrorCode.MeasurementMismatch },
        { "policy.td.mrowner", ErrorCode.MeasurementMismatch },
        { "policy.td.mrownerconfig", ErrorCode.MeasurementMismatch },
        { "policy.report_data", ErrorCode.ReportDataMismatch },
    };

    /// <summary>The policy expecting the real quote's own value for one field, or that value with one bit flipped.</summary>
    private static AttestationPolicy Expecting(string check, TdReportBody td, bool tamper)
    {
        ReadOnlyMemory<byte> V(ReadOnlyMemory<byte> actual) => tamper ? Flip(actual) : actual;
        return check switch
        {
            "policy.td.attributes" => new AttestationPolicy { TdAttributes = V(td.TdAttributes) },
            "policy.td.xfam" => new AttestationPolicy { Xfam = V(td.Xfam) },
            "policy.td.mrseam" => new AttestationPolicy { MrSeamAllowList = [V(td.MrSeam)] },
            "policy.td.mrtd" => new AttestationPolicy { MrTd = V(td.MrTd) },
            "policy.td.rtmr0" => new AttestationPolicy { Rtmr0 = V(td.Rtmr0) },
            "policy.td.rtmr1" => new AttestationPolicy { Rtmr1 = V(td.Rtmr1) },
            "policy.td.rtmr2" => new AttestationPolicy { Rtmr2 = V(td.Rtmr2) },
            "policy.td.rtmr3" => new AttestationPolicy { Rtmr3 = V(td.Rtmr3) },
            "policy.td.mrconfigid" => new AttestationPolicy { MrConfigId = V(td.MrConfigId) },
            "policy.td.mrowner" => new AttestationPolicy { MrOwner = V(td.MrOwner) },
            "policy.td.mrownerconfig" => new AttestationPolicy { MrOwnerConfig = V(td.MrOwnerConfig) },
            "policy.report_data" => new AttestationPolicy { ReportData = V(td.ReportData) },
            _ => throw new ArgumentOutOfRangeException(nameof(check)),
        };
    }

    [Theory]
    [MemberData(nameof(Fields))]
    public void Accepts_ExpectedValue(string check, ErrorCode code)
    {
        var quote = RealTdxQuote();

        var result = PolicyEvaluator.Evaluate(Expecting(check, quote.TdReport!, tamper: false), Verified(quote, TcbStatus.UpToDate));

        Assert.True(result.Accepted, code.ToString());
        Assert.Equal(CheckOutcome.Passed, result[check].Outcome);
    }

    [Theory]
    [MemberData(nameof(Fields))]
    public void Rejects_OtherValue_NamingFieldExpectedAndActual(string check, ErrorCode code)
    {
        var quote = RealTdxQuote();
        var policy = Expecting(check, quote.TdReport!, tamper: true);

        var result = PolicyEvaluator.Evaluate(policy, Verified(quote, TcbStatus.UpToDate));

        Assert.False(result.Accepted);
        var failure = Assert.Single(result.Failures);
        Assert.Equal(check, failure.Name);
        Assert.Equal(code, failure.Code);
        Assert.Contains("expected", failure.Detail, StringComparison.Ordinal);
        Assert.Contains("actual", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_TeeTcbSvnBelowMinimum_NamingTheByte()
    {
        // tdx_quote: TEE_TCB_SVN 06 01 03 00…
        var low = new AttestationPolicy { MinimumTeeTcbSvn = Convert.FromHexString("06010400000000000000000000000000") };
        var ok = new AttestationPolicy { MinimumTeeTcbSvn = Convert.FromHexString("03010200000000000000000000000000") };
        var quote = RealTdxQuote();

        var rejected = PolicyEvaluator.Evaluate(low, Verified(quote, TcbStatus.UpToDate));
        var accepted = PolicyEvaluator.Evaluate(ok, Verified(quote, TcbStatus.UpToDate));

        Assert.Equal(ErrorCode.TeeTcbSvnTooLow, rejected["policy.td.teeTcbSvn"].Code);
        Assert.Contains("byte 2 is 3, needs ≥ 4", rejected["policy.td.teeTcbSvn"].Detail, StringComparison.Ordinal);
        Assert.True(accepted.Accepted);
    }

    [Fact]
    public void Reports_EveryFailure_WithoutShortCircuit()
    {
        var quote = RealTdxQuote();
        var policy = new AttestationPolicy
        {
            MrTd = Flip(quote.TdReport!.MrTd),
            ReportData = Flip(quote.ReportData),
            MinimumTcbEvaluationDataNumber = 18,
        };

        var result = PolicyEvaluator.Evaluate(policy, Verified(quote, TcbStatus.OutOfDate));

        Assert.Equal(["policy.tcb.status", "policy.tcb.evaluationDataNumber", "policy.td.mrtd", "policy.report_data"], result.Failures.Select(f => f.Name));
    }

    [Fact]
    public void Rejects_SimulatedEvidence_UnlessAllowed()
    {
        var simulated = Verified(RealTdxQuote(), TcbStatus.UpToDate) with { IsSimulated = true };

        var strict = PolicyEvaluator.Evaluate(AttestationPolicy.Default, simulated);
        var lenient = PolicyEvaluator.Evaluate(new AttestationPolicy { AllowSimulated = true }, simulated);

        Assert.Equal(ErrorCode.SimulatedEvidenceNotTrusted, strict["policy.simulated"].Code);
        Assert.False(strict.Accepted);
        Assert.True(lenient.Accepted);
        Assert.Contains("SIMULATED", lenient["policy.simulated"].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_EvidenceThatDidNotVerify_CarryingTheVerifierCode()
    {
        var failed = Verified(RealTdxQuote(), TcbStatus.UpToDate) with
        {
            Checks = [CheckResult.Fail("quote.signature", ErrorCode.QuoteSignatureInvalid, "bad signature (fixture)")],
        };

        var result = PolicyEvaluator.Evaluate(new AttestationPolicy { AllowDebug = true, AllowSimulated = true }, failed);

        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.QuoteSignatureInvalid, result["policy.authenticity"].Code);
    }

    [Fact]
    public void Rejects_RevokedTcb_EvenWhenEveryStatusIsAllowed()
    {
        var policy = new AttestationPolicy
        {
            AcceptedTcbStatuses = Enum.GetValues<TcbStatus>().Where(s => s != TcbStatus.Revoked).ToHashSet(),
        };

        var result = PolicyEvaluator.Evaluate(policy, Verified(RealTdxQuote(), TcbStatus.Revoked));

        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.TcbRevoked, result["policy.authenticity"].Code);
        Assert.Equal(ErrorCode.TcbStatusNotAccepted, result["policy.tcb.status"].Code);
    }

    [Fact]
    public void Rejects_NoMatchingTcbLevel_NamingTheComponent()
    {
        var unmatched = Verified(RealTdxQuote(), TcbStatus.UpToDate) with
        {
            Status = null,
            PlatformTcbStatus = null,
            Checks = [CheckResult.Fail("tcb.level", ErrorCode.TcbLevelNotFound, "no TCB level matches (fixture)")],
            ShortfallsToUpToDate = [],
            Shortfalls = [new TcbComponentShortfall(TcbComponentKind.SgxComponent, 7, "SEAMLDR ACM", 3, 5)],
        };

        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default, unmatched);

        Assert.False(result.Accepted);
        Assert.Contains("SGX TCB component 8 (SEAMLDR ACM) is 3, needs 5", result["policy.tcb.status"].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_TdExpectations_ForAnSgxQuote()
    {
        var sgx = RealSgxQuote();
        var policy = new AttestationPolicy { MrTd = new byte[48] };

        var result = PolicyEvaluator.Evaluate(policy, Verified(sgx, TcbStatus.UpToDate));

        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.MeasurementMismatch, result["policy.td.mrtd"].Code);
        Assert.Equal(CheckOutcome.Passed, result["policy.td.debug"].Outcome);
    }
}
