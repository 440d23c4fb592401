using System.Text.Json;
using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Policy;

/// <summary>Verification then policy, on the real quotes and collateral in ../shared/testdata.</summary>
public sealed class RealQuotePolicyTests
{
    private static QuoteVerificationResult Verify(string quote, string collateral, long unixTime) =>
        new DcapVerifier().Verify(
            QuoteInput.Decode(SharedTestData.ReadBytes(quote)),
            JsonSerializer.Deserialize<DcapCollateral>(SharedTestData.ReadBytes(collateral))!,
            DateTimeOffset.FromUnixTimeSeconds(unixTime));

    [Fact]
    public void ExamplePolicy_AcceptsTheQuoteItWasWrittenFor()
    {
        var policy = AttestationPolicy.Load(Path.Combine(SharedTestData.RepositoryRoot, "docs", "policy.example.json"));
        var verification = Verify("tdx/dcap-qvl/tdx_quote", "tdx/dcap-qvl/tdx_quote_collateral.json", 1750400000);

        var result = PolicyEvaluator.Evaluate(policy, verification);

        Assert.True(result.Accepted, string.Join("\n", result.Failures));
        Assert.DoesNotContain(result.Checks, c => c.Outcome == CheckOutcome.Skipped && c.Name != "policy.tcb.advisories");
    }

    [Fact]
    public void DefaultPolicy_RejectsOutdatedQuote_NamingTheComponentThatFallsShort()
    {
        var verification = Verify("tdx/dcap-qvl/tdx_quote_outdated", "tdx/dcap-qvl/tdx_quote_outdated_collateral.json", 1771500000);

        var result = PolicyEvaluator.Evaluate(AttestationPolicy.Default, verification);

        Assert.False(result.Accepted);
        Assert.Equal(CheckOutcome.Failed, result["policy.authenticity"].Outcome);
        Assert.Contains("SEAMLDR ACM", result["policy.tcb.status"].Detail, StringComparison.Ordinal);
    }
}
