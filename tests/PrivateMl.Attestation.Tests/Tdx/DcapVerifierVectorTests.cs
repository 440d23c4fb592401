using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Tdx;

/// <summary>
/// Every case of expected.json <c>cases</c> through <see cref="DcapVerifier"/>. The quote, collateral and time come
/// from the file; our verdict is recorded here, row by row. Where the two npm verifiers disagree, ours is the strict
/// one (see <see cref="DcapVerifierDifferentialTests"/>).
/// </summary>
public class DcapVerifierVectorTests
{
    /// <summary>One expected outcome: accepted with a status and advisories, or rejected with a first error code.</summary>
    public sealed record Verdict(string CaseId, TcbStatus? Status, string[] Advisories, ErrorCode? FirstError, ErrorCode[] AlsoFailing)
    {
        public override string ToString() => CaseId;
    }

    private static Verdict Accept(string id, TcbStatus status, params string[] advisories) => new(id, status, advisories, null, []);

    private static Verdict Reject(string id, ErrorCode first, params ErrorCode[] also) => new(id, null, [], first, also);

    private const string SgxConfigAndSw = "sgx: ConfigurationAndSWHardeningNeeded";

    public static TheoryData<Verdict> Cases => new(
        Accept("tdx_quote@inside", TcbStatus.UpToDate),
        Reject("tdx_quote@1750320802", ErrorCode.CollateralNotYetValid, ErrorCode.CrlNotYetValid),
        Reject("tdx_quote@after_expiry", ErrorCode.CollateralExpired, ErrorCode.CrlExpired),
        Reject("tdx_quote@before_issue", ErrorCode.CrlNotYetValid, ErrorCode.CertificateNotYetValid, ErrorCode.CollateralNotYetValid),
        Reject("tdx_quote@qe_identity_not_yet_issued", ErrorCode.CollateralNotYetValid),
        Accept("tdx_quote@first_second_both_accept", TcbStatus.UpToDate),
        Accept("tdx_quote@pck_crl_last_second", TcbStatus.UpToDate),
        Reject("tdx_quote@pck_crl_next_update", ErrorCode.CrlExpired),
        Reject("tdx_quote@tcb_info_next_update", ErrorCode.CrlExpired),
        Reject("tdx_quote@tcb_info_expired", ErrorCode.CollateralExpired, ErrorCode.CrlExpired),
        Reject("tdx_quote_outdated@inside", ErrorCode.TcbLevelNotFound),
        Reject("tdx_quote_outdated@1750320802", ErrorCode.CollateralNotYetValid, ErrorCode.CertificateNotYetValid),
        Reject("tdx_quote_outdated@after_expiry", ErrorCode.CollateralExpired, ErrorCode.CrlExpired),
        Reject("tdx_quote_outdated@before_issue", ErrorCode.CollateralNotYetValid, ErrorCode.CrlNotYetValid),
        Reject("tdx_quote_outdated@qe_identity_next_update", ErrorCode.CrlExpired, ErrorCode.TcbLevelNotFound),
        Reject("tdx_quote_outdated@qe_identity_expired", ErrorCode.CollateralExpired, ErrorCode.CrlExpired, ErrorCode.TcbLevelNotFound),
        Accept("sgx_quote@inside", TcbStatus.ConfigurationAndSWHardeningNeeded, "INTEL-SA-00289", "INTEL-SA-00615"),
        Reject("sgx_quote@1750320802", ErrorCode.CollateralNotYetValid, ErrorCode.CrlNotYetValid),
        Reject("sgx_quote@after_expiry", ErrorCode.CollateralExpired, ErrorCode.CrlExpired),
        Reject("sgx_quote@before_issue", ErrorCode.CrlNotYetValid, ErrorCode.CertificateNotYetValid, ErrorCode.CollateralNotYetValid),
        Accept("sgx_quote@qe_identity_next_update", TcbStatus.ConfigurationAndSWHardeningNeeded, "INTEL-SA-00289", "INTEL-SA-00615"),
        Reject("sgx_quote@qe_identity_expired", ErrorCode.CollateralExpired),
        Reject("sgx_quote@pck_crl_next_update", ErrorCode.CollateralExpired, ErrorCode.CrlExpired),
        Reject("tdx-quote.hex+tdx_quote_collateral@inside", ErrorCode.TcbLevelNotFound),
        Reject("tdx-quote.hex+tdx_quote_collateral@1750320802", ErrorCode.CollateralNotYetValid, ErrorCode.TcbLevelNotFound),
        Reject("quote-from-tappd.hex+tdx_quote_collateral@inside", ErrorCode.TcbLevelNotFound),
        Reject("tdx_quote+tdx_quote_outdated_collateral", ErrorCode.FmspcMismatch),
        Reject("sgx_quote+tdx_quote_collateral", ErrorCode.CollateralTypeMismatch, ErrorCode.CrlIssuerMismatch),
        Reject("tdx_quote+sgx_quote_collateral", ErrorCode.CollateralTypeMismatch, ErrorCode.CrlIssuerMismatch));

    [Fact]
    public void Table_Covers_EveryCase_InExpectedJson()
    {
        var ids = Vectors.ExpectedJson.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("id").GetString()!).ToHashSet();
        var ours = Cases.Select(row => row.Data.CaseId).ToHashSet();
        Assert.Equal(29, ids.Count);
        Assert.Equal(ids.Order(), ours.Order());
        Assert.NotEqual(SgxConfigAndSw, string.Empty);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Verifies_Case(Verdict expected)
    {
        var c = Vectors.Case(expected.CaseId);
        var result = Run(c.GetProperty("quote").GetString()!, c.GetProperty("collateral").GetString()!, c.GetProperty("time").GetInt64());

        Assert.Equal(DcapVerifier.CheckNames.All, result.Checks.Select(x => x.Name));
        Assert.False(result.IsSimulated);
        Assert.NotNull(result.Quote);
        if (expected.Status is { } status)
        {
            Assert.True(result.Accepted, result.FirstFailure?.Detail);
            Assert.Equal(status, result.Status);
            Assert.Equal(expected.Advisories, result.AdvisoryIds);
            Assert.All(result.Checks, x => Assert.NotEqual(CheckOutcome.Failed, x.Outcome));

            // The pair in intel_rule_tcb_evaluation agrees on the platform level and QE level.
            var pair = Vectors.ExpectedJson.GetProperty("intel_rule_tcb_evaluation").GetProperty("pairs").EnumerateArray()
                .Single(p => p.GetProperty("quote").GetString() == c.GetProperty("quote").GetString()).GetProperty("launch");
            Assert.Equal(pair.GetProperty("platform_level").GetProperty("index").GetInt32(), result.PlatformTcbLevel!.Index);
            Assert.Equal(pair.GetProperty("platform_level").GetProperty("tcbStatus").GetString(), result.PlatformTcbStatus.ToString());
            Assert.Equal(pair.GetProperty("qe_identity_level").GetProperty("tcbStatus").GetString(), result.QeTcbStatus.ToString());
            Assert.Equal(pair.GetProperty("converged_status").GetString(), result.Status.ToString());
            if (pair.TryGetProperty("tdx_module", out var module))
            {
                Assert.Equal(module.GetProperty("tcbStatus").GetString(), result.TdxModuleTcbStatus.ToString());
            }
        }
        else
        {
            Assert.False(result.Accepted);
            Assert.Equal(expected.FirstError, result.Error);
            var failing = result.Checks.Where(x => x.Outcome == CheckOutcome.Failed).Select(x => x.Code!.Value).ToList();
            Assert.All(expected.AlsoFailing, code => Assert.Contains(code, failing));
            Assert.All(result.Checks.Where(x => x.Outcome == CheckOutcome.Failed), x => Assert.False(string.IsNullOrWhiteSpace(x.Detail)));
        }
    }

    [Theory]
    [InlineData("tdx_quote_outdated", "tdx_quote_outdated_collateral.json", 1772000000L)]
    [InlineData("tdx-quote.hex", "tdx_quote_collateral.json", 1750400000L)]
    [InlineData("quote-from-tappd.hex", "tdx_quote_collateral.json", 1750400000L)]
    public void Rejects_NoMatchingTcbLevel_NamingTheComponentThatFallsShort(string quote, string collateral, long time)
    {
        var result = Run(quote, collateral, time);
        Assert.Equal(ErrorCode.TcbLevelNotFound, result.Error);
        Assert.Null(result.Status);

        // SGX TCB component 8 (index 7, "SEAMLDR ACM") is 3; every level requires 5.
        var shortfall = Assert.Single(result.Shortfalls, s => s.Kind == TcbComponentKind.SgxComponent);
        Assert.Equal(7, shortfall.Index);
        Assert.Equal("SEAMLDR ACM", shortfall.Name);
        Assert.Equal(3, shortfall.Actual);
        Assert.Equal(5, shortfall.Required);
        Assert.Contains(result.ShortfallsToUpToDate, s => s.Kind == TcbComponentKind.SgxComponent && s.Index == 7);
        var check = result.Checks.Single(c => c.Name == DcapVerifier.CheckNames.PlatformTcbLevel);
        Assert.Contains("SEAMLDR ACM", check.Detail, StringComparison.Ordinal);

        // Everything about authenticity still passed: the quote is genuine, the platform is merely not supported.
        foreach (var name in new[] { DcapVerifier.CheckNames.PckChain, DcapVerifier.CheckNames.QeReportSignature, DcapVerifier.CheckNames.QeReportBinding, DcapVerifier.CheckNames.QuoteSignature })
        {
            Assert.Equal(CheckOutcome.Passed, result.Checks.Single(c => c.Name == name).Outcome);
        }
    }

    [Fact]
    public void Accepted_TdxQuote_ReportsEveryLevel()
    {
        var result = Run("tdx_quote", "tdx_quote_collateral.json", 1750400000);
        Assert.Equal("b0c06f000000", result.Fmspc);
        Assert.Equal(PrivateMl.Attestation.Pck.PckCaType.Platform, result.PckCaType);
        Assert.Equal(17, result.TcbEvaluationDataNumber);
        Assert.Equal(TcbStatus.UpToDate, result.TdxModuleTcbStatus);
        Assert.Equal(0, result.TdxModuleTcbLevel!.Index); // TDX_01, isvsvn 4
        Assert.Equal(DateTimeOffset.Parse("2024-03-13T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture), result.TcbDate);
        Assert.Empty(result.Shortfalls);
        Assert.Empty(result.ShortfallsToUpToDate);
        Assert.Equal(CheckOutcome.Passed, result.Checks.Single(c => c.Name == DcapVerifier.CheckNames.TdxModuleIdentity).Outcome);
    }

    [Fact]
    public void Accepted_SgxQuote_SaysWhatWouldBeUpToDate()
    {
        var result = Run("sgx_quote", "sgx_quote_collateral.json", 1750400000);
        Assert.Equal(1, result.PlatformTcbLevel!.Index);
        Assert.Equal(PrivateMl.Attestation.Pck.PckCaType.Processor, result.PckCaType);
        Assert.Equal(CheckOutcome.Skipped, result.Checks.Single(c => c.Name == DcapVerifier.CheckNames.TdxModuleIdentity).Outcome);
        Assert.NotEmpty(result.ShortfallsToUpToDate);
    }

    [Fact]
    public void Warm_And_Cold_GiveTheSameResult()
    {
        var quote = Vectors.Quote("tdx_quote");
        var collateral = Vectors.Collateral("tdx_quote_collateral.json");
        var warm = new DcapVerifier();
        var cold = new DcapVerifier(new DcapVerifierOptions { CollateralCacheCapacity = 0 });
        foreach (var t in new long[] { 1750400000, 1752919235, 1735689600, 1750400000 })
        {
            var now = DateTimeOffset.FromUnixTimeSeconds(t);
            var a = warm.Verify(quote, collateral, now);
            var b = cold.Verify(quote, collateral, now);
            Assert.Equal(b.Checks, a.Checks);
            Assert.Equal(b.Status, a.Status);
        }
    }

    internal static QuoteVerificationResult Run(string quote, string collateral, long time) =>
        new DcapVerifier().Verify(Vectors.Quote(quote), Vectors.Collateral(collateral), DateTimeOffset.FromUnixTimeSeconds(time));
}
