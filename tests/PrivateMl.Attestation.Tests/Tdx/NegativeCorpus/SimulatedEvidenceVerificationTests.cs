using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Attestation.Tests.Tdx.NegativeCorpus;

/// <summary>Simulated quotes with simulated collateral verify under the simulated root, and only under it.</summary>
public sealed class SimulatedEvidenceVerificationTests
{
    [Fact]
    public void Accepts_simulated_quote_when_the_simulated_root_is_trusted_explicitly()
    {
        using var platform = CorpusFixture.NewPlatform();
        var reportData = CorpusFixture.ReportData;
        var quote = platform.CreateQuote(reportData, new byte[48]);
        var collateral = platform.CreateCollateral(CorpusFixture.Now);

        var result = CorpusFixture.Verifier(platform).Verify(quote, collateral, CorpusFixture.Now);

        Assert.True(result.Accepted, CorpusFixture.Describe(result));
        Assert.True(result.IsSimulated);
        Assert.Equal(TcbStatus.UpToDate, result.Status);
        Assert.Equal(reportData, result.Quote!.ReportData.ToArray());
        Assert.Contains(result.Checks, c => c.Name == DcapVerifier.CheckNames.TrustAnchor && c.Detail.Contains("SIMULATED", StringComparison.Ordinal));
    }

    [Fact]
    public void Rejects_simulated_quote_under_the_default_intel_root()
    {
        using var platform = CorpusFixture.NewPlatform();
        var quote = platform.CreateQuote(CorpusFixture.ReportData, new byte[48]);
        var collateral = platform.CreateCollateral(CorpusFixture.Now);

        var result = new DcapVerifier().Verify(quote, collateral, CorpusFixture.Now);

        Assert.False(result.Accepted);
        Assert.False(result.IsSimulated);
        Assert.Contains(result.Checks, c => c.Outcome == CheckOutcome.Failed && c.Code is ErrorCode.PckChainUntrusted or ErrorCode.SigningChainUntrusted);
    }
}
