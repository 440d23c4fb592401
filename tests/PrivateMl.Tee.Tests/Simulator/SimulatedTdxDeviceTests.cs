using System.Security.Cryptography;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Tee.Tests.Simulator;

public sealed class SimulatedTdxDeviceTests
{
    [Fact]
    public async Task Quotes_carry_exactly_the_requested_report_data_and_say_simulated()
    {
        using var device = SimulatedTdxDevice.InMemory(Simulators.Platform(), new ManualClock(Simulators.Now));
        var reportData = Simulators.ReportData(9);

        var quote = new QuoteBytes(await device.GetQuoteAsync(reportData, TestContext.Current.CancellationToken));

        Assert.True(device.IsSimulated);
        Assert.Equal("simulator", device.ProviderName);
        Assert.Equal(reportData, quote.ReportData);
        Assert.Equal(new byte[48], quote.Rtmr(3));
        Assert.True(quote.QuoteSignatureVerifies());
        await Assert.ThrowsAsync<ArgumentException>(async () => await device.GetQuoteAsync(new byte[65], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Extend_rtmr3_follows_the_tdx_rule()
    {
        using var device = SimulatedTdxDevice.InMemory(Simulators.Platform(), new ManualClock(Simulators.Now));
        var first = SHA384.HashData("event one"u8);
        var second = SHA384.HashData("event two"u8);

        await device.ExtendRtmrAsync(3, first, TestContext.Current.CancellationToken);
        await device.ExtendRtmrAsync(3, second, TestContext.Current.CancellationToken);
        var quote = new QuoteBytes(await device.GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken));

        var expected = SHA384.HashData([.. SHA384.HashData([.. new byte[48], .. first]), .. second]);
        Assert.Equal(expected, device.GetRtmr(3));
        Assert.Equal(expected, quote.Rtmr(3));
        Assert.Equal(device.Platform.Profile.Rtmr2.ToArray(), quote.Rtmr(2));
    }

    [Fact]
    public async Task Extend_rejects_other_registers_and_wrong_digest_lengths()
    {
        using var device = SimulatedTdxDevice.InMemory(Simulators.Platform(), new ManualClock(Simulators.Now));

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await device.ExtendRtmrAsync(0, new byte[48], TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(async () => await device.ExtendRtmrAsync(3, new byte[32], TestContext.Current.CancellationToken));
        Assert.Equal(new byte[48], device.GetRtmr(3));
    }

    [Fact]
    public async Task Restart_keeps_identity_and_rtmr_state_in_owner_only_files()
    {
        var directory = Simulators.TempDirectory();
        var clock = new ManualClock(Simulators.Now);
        try
        {
            byte[] attestationKey, pck, rtmr3;
            using (var device = SimulatedTdxDevice.OpenOrCreate(directory, clock))
            {
                await device.ExtendRtmrAsync(3, SHA384.HashData("boot"u8), TestContext.Current.CancellationToken);
                attestationKey = device.Platform.QuotingEnclave.AttestationPublicKey.ToArray();
                pck = device.Platform.Pki.PckCertificate.RawData;
                rtmr3 = device.GetRtmr(3);
            }

            using (var restarted = SimulatedTdxDevice.OpenOrCreate(directory, clock))
            {
                var quote = new QuoteBytes(await restarted.GetQuoteAsync(Simulators.ReportData(1), TestContext.Current.CancellationToken));
                Assert.Equal(attestationKey, quote.AttestationKey);
                Assert.Equal(pck, quote.PckChain()[0].RawData);
                Assert.Equal(rtmr3, quote.Rtmr(3));
                Assert.True(quote.QeReportSignatureVerifies(restarted.Platform.Pki.PckCertificate));

                restarted.ResetRuntimeMeasurements();
                Assert.Equal(new byte[48], restarted.GetRtmr(3));
            }

            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));
                var files = Directory.GetFiles(directory);
                Assert.Contains(files, f => f.EndsWith("attestation.key", StringComparison.Ordinal));
                Assert.Contains(files, f => f.EndsWith("rtmr.json", StringComparison.Ordinal));
                foreach (var file in files)
                {
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                }
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Concurrent_quotes_and_extensions_stay_consistent()
    {
        using var device = SimulatedTdxDevice.InMemory(Simulators.Platform(), new ManualClock(Simulators.Now));
        var digest = SHA384.HashData("same event"u8);

        var quotes = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            var reportData = Simulators.ReportData((byte)i);
            var quote = new QuoteBytes(await device.GetQuoteAsync(reportData));
            return (reportData, quote);
        })).ToArray();
        var extensions = Enumerable.Range(0, 64).Select(_ => Task.Run(async () => await device.ExtendRtmrAsync(3, digest))).ToArray();
        await Task.WhenAll(extensions);
        var results = await Task.WhenAll(quotes);

        Assert.All(results, r =>
        {
            Assert.Equal(r.reportData, r.quote.ReportData);
            Assert.True(r.quote.QuoteSignatureVerifies());
        });
        var expected = new byte[48];
        for (var i = 0; i < 64; i++)
        {
            expected = SHA384.HashData([.. expected, .. digest]);
        }

        Assert.Equal(expected, device.GetRtmr(3));
    }
}
