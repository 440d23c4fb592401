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

    [Theory]
    [InlineData(TcbStatus.OutOfDate)]
    [InlineData(TcbStatus.SWHardeningNeeded)]
    [InlineData(TcbStatus.ConfigurationNeeded)]
    [InlineData(TcbStatus.OutOfDateConfigurationNeeded)]
    public void Reports_the_platform_status_and_advisories_the_collateral_says(TcbStatus status)
    {
        using var platform = CorpusFixture.NewPlatform();
        var quote = platform.CreateQuote(CorpusFixture.ReportData, new byte[48]);
        var options = new SimulatedCollateralOptions
        {
            TcbInfo = new TcbInfoOptions { Levels = TcbInfoOptions.LevelsForPlatformStatus(status, "INTEL-SA-00837", "INTEL-DOC-00001") },
        };

        var result = CorpusFixture.Verifier(platform).Verify(quote, platform.CreateCollateral(CorpusFixture.Now, options), CorpusFixture.Now);

        Assert.True(result.Accepted, CorpusFixture.Describe(result));
        Assert.Equal(status, result.PlatformTcbStatus);
        Assert.Equal(status, result.Status);
        Assert.Equal(["INTEL-SA-00837", "INTEL-DOC-00001"], result.AdvisoryIds);
    }

    [Fact]
    public void Accepts_processor_ca_platform_and_trailing_zero_bytes_like_configfs_quotes()
    {
        var options = new SimulatedPlatformOptions
        {
            Pki = new SimulatedPkiOptions { Platform = new PckPlatformInfo { CaKind = PckCaKind.Processor, SgxType = SgxType.Standard } },
        };
        using var platform = CorpusFixture.NewPlatform(options);
        var quote = platform.CreateQuote(CorpusFixture.ReportData, new byte[48], new QuoteDefects { TrailingBytes = new byte[70] });

        var result = CorpusFixture.Verifier(platform).Verify(quote, platform.CreateCollateral(CorpusFixture.Now), CorpusFixture.Now);

        Assert.True(result.Accepted, CorpusFixture.Describe(result));
        Assert.Equal(70, result.Quote!.TrailingBytes.Length);
    }

    [Fact]
    public void Debug_td_is_authentic_and_left_to_policy()
    {
        using var platform = CorpusFixture.NewPlatform(new SimulatedPlatformOptions { Profile = new TdProfile().WithDebug() });
        var quote = platform.CreateQuote(CorpusFixture.ReportData, new byte[48]);

        var result = CorpusFixture.Verifier(platform).Verify(quote, platform.CreateCollateral(CorpusFixture.Now), CorpusFixture.Now);

        Assert.Equal(1, result.Quote!.TdReport!.TdAttributes.Span[0] & 1);
        Assert.True(result.Accepted, CorpusFixture.Describe(result));
    }

    [Fact]
    public async Task Device_quotes_after_rtmr3_extension_verify_and_carry_the_new_rtmr3()
    {
        using var platform = CorpusFixture.NewPlatform();
        using var device = SimulatedTdxDevice.InMemory(platform, TimeProvider.System);
        var digest = System.Security.Cryptography.SHA384.HashData("compose-hash"u8);
        await device.ExtendRtmrAsync(3, digest, TestContext.Current.CancellationToken);
        var quote = await device.GetQuoteAsync(CorpusFixture.ReportData, TestContext.Current.CancellationToken);

        var result = CorpusFixture.Verifier(platform).Verify(quote, platform.CreateCollateral(CorpusFixture.Now), CorpusFixture.Now);

        Assert.True(result.Accepted, CorpusFixture.Describe(result));
        Assert.Equal(device.GetRtmr(3), result.Quote!.TdReport!.Rtmr3.ToArray());
    }
}
