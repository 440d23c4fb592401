using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Attestation.Tests.Policy;

/// <summary>
/// Issue 3 acceptance: policy on TCB status, with collateral the tests sign themselves (the simulator's TCB Signing
/// key under its simulated root), verified for real by <see cref="DcapVerifier"/> and then judged by the policy.
/// </summary>
public sealed class TcbPolicyAcceptanceTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly string[] Advisories = ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-01036"];

    private readonly SimulatedTdxPlatform platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions(), Now);

    public void Dispose() => platform.Dispose();

    /// <summary>Quote and collateral where the platform's own level has <paramref name="status"/> and an UpToDate level needs one SVN more.</summary>
    private QuoteVerificationResult VerifiedPlatform(TcbStatus status, params string[] advisories)
    {
        var options = new SimulatedCollateralOptions
        {
            TcbInfo = new TcbInfoOptions { Levels = TcbInfoOptions.LevelsForPlatformStatus(status, advisories) },
        };
        var collateral = platform.CreateCollateral(Now, options);
        var quote = platform.CreateQuote(new byte[64], new byte[48]);
        var verifier = new DcapVerifier(new DcapVerifierOptions { TrustedRootCertificate = platform.Pki.RootCertificate.RawData, AllowSimulated = true });
        var result = verifier.Verify(quote, collateral, Now);
        Assert.True(result.Accepted, string.Join("\n", result.Checks.Select(c => $"{c.Name}: {c.Outcome} {c.Code} {c.Detail}")));
        Assert.Equal(status, result.Status);
        return result;
    }

    private static AttestationPolicy Allowing(params TcbStatus[] statuses) =>
        new() { AllowSimulated = true, AcceptedTcbStatuses = new HashSet<TcbStatus>(statuses) };

    [Fact]
    public void Accepts_UpToDatePlatform_UnderDefaultPolicyPlusSimulatedRoot()
    {
        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default with { AllowSimulated = true }, VerifiedPlatform(TcbStatus.UpToDate));

        Assert.True(result.Accepted, string.Join("\n", result.Failures));
    }

    [Fact]
    public void Rejects_SimulatedEvidence_UnderTheUntouchedDefaultPolicy()
    {
        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default, VerifiedPlatform(TcbStatus.UpToDate));

        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.SimulatedEvidenceNotTrusted, Assert.Single(result.Failures).Code);
    }

    [Fact]
    public void Rejects_OutOfDatePlatform_ByDefault_NamingTheShortfall()
    {
        var verification = VerifiedPlatform(TcbStatus.OutOfDate, Advisories);

        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default with { AllowSimulated = true }, verification);

        Assert.Equal(PolicyVerdict.Rejected, result.Verdict);
        var status = Assert.Single(result.Failures);
        Assert.Equal("policy.tcb.status", status.Name);
        Assert.Equal(ErrorCode.TcbStatusNotAccepted, status.Code);
        Assert.Contains("actual: OutOfDate", status.Detail, StringComparison.Ordinal);
        Assert.NotEmpty(verification.ShortfallsToUpToDate);
        Assert.Contains(verification.ShortfallsToUpToDate[0].ToString(), status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Accepts_OutOfDatePlatform_WhenAllowed_ListingItsAdvisories()
    {
        var result = PolicyEvaluator.Evaluate(Allowing(TcbStatus.UpToDate, TcbStatus.OutOfDate), VerifiedPlatform(TcbStatus.OutOfDate, Advisories));

        Assert.True(result.Accepted, string.Join("\n", result.Failures));
        foreach (var advisory in Advisories)
        {
            Assert.Contains(advisory, result["policy.tcb.status"].Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void AdvisoryAllowList_AdmitsExactlyTheListedAdvisories()
    {
        var verification = VerifiedPlatform(TcbStatus.OutOfDate, Advisories);
        var exact = Allowing(TcbStatus.OutOfDate) with { AllowedAdvisoryIds = new HashSet<string>(Advisories) };
        var missingOne = Allowing(TcbStatus.OutOfDate) with { AllowedAdvisoryIds = new HashSet<string>(Advisories[..2]) };

        var admitted = PolicyEvaluator.Evaluate(exact, verification);
        var refused = PolicyEvaluator.Evaluate(missingOne, verification);

        Assert.True(admitted.Accepted, string.Join("\n", admitted.Failures));
        Assert.False(refused.Accepted);
        var failure = Assert.Single(refused.Failures);
        Assert.Equal(ErrorCode.AdvisoryNotAccepted, failure.Code);
        Assert.EndsWith("not allowed: INTEL-SA-01036", failure.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(TcbStatus.SWHardeningNeeded)]
    [InlineData(TcbStatus.ConfigurationNeeded)]
    [InlineData(TcbStatus.OutOfDateConfigurationNeeded)]
    public void OtherStatuses_AreOptIn(TcbStatus status)
    {
        var verification = VerifiedPlatform(status, "INTEL-SA-00615");

        Assert.False(PolicyEvaluator.Evaluate(Allowing(TcbStatus.UpToDate), verification).Accepted);
        Assert.True(PolicyEvaluator.Evaluate(Allowing(TcbStatus.UpToDate, status), verification).Accepted);
    }
}
