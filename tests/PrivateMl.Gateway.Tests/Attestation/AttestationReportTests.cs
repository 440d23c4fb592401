using System.Security.Cryptography;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Gateway.Attestation;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Attestation;

/// <summary>The report over the real simulated agent: quote verifies, report_data binds address ‖ nonce, log replays.</summary>
public sealed class AttestationReportTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync();

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    [Theory]
    [InlineData("ecdsa")]
    [InlineData("ed25519")]
    public async Task Report_QuoteVerifies_BindsAddressAndNonce_AndEventLogReplaysToRtmr3(string algo)
    {
        var nonce = RandomNumberGenerator.GetBytes(32);
        var (status, report) = await _node.GetJsonAsync($"/v1/attestation/report?signing_algo={algo}&nonce={Convert.ToHexStringLower(nonce)}");

        Assert.Equal(200, status);
        Assert.Equal(algo, report.GetProperty("signing_algo").GetString());
        Assert.Equal(Convert.ToHexStringLower(nonce), report.GetProperty("request_nonce").GetString());
        var quoteBytes = Convert.FromHexString(report.GetProperty("intel_quote").GetString()!);
        var verifier = new DcapVerifier(new DcapVerifierOptions
        {
            TrustedRootCertificate = _node.Device.Platform.Pki.RootCertificate.RawData,
            AllowSimulated = true,
        });
        var result = verifier.Verify(quoteBytes, _node.Device.CreateCollateral(), DateTimeOffset.UtcNow);
        Assert.True(result.Accepted, string.Join("; ", result.Checks.Where(c => c.Outcome != CheckOutcome.Passed)));

        var address = report.GetProperty("signing_address").GetString()!;
        var addressBytes = Convert.FromHexString(address.StartsWith("0x", StringComparison.Ordinal) ? address[2..] : address);
        Assert.Equal(algo == "ecdsa" ? 20 : 32, addressBytes.Length);
        var expected = new byte[64];
        addressBytes.CopyTo(expected, 0);
        nonce.CopyTo(expected, 32);
        var quote = TdxQuote.Parse(quoteBytes);
        Assert.Equal(expected, quote.ReportData.ToArray());

        var events = TdxEventLog.Parse(report.GetProperty("event_log").GetRawText());
        Assert.Equal(quote.TdReport!.Rtmr3.ToArray(), RtmrReplay.Replay(events).Rtmr3.ToArray());

        Assert.Equal(System.Text.Json.JsonValueKind.Null, report.GetProperty("nvidia_payload").ValueKind);
        Assert.Equal(AttestationReportBuilder.GpuUnavailable, report.GetProperty("nvidia_payload_unavailable").GetString());
        Assert.True(report.GetProperty("info").TryGetProperty("app_id", out _));
        var all = report.GetProperty("all_attestations");
        Assert.Equal(1, all.GetArrayLength());
        Assert.Equal(report.GetProperty("intel_quote").GetString(), all[0].GetProperty("intel_quote").GetString());
    }

    [Fact]
    public async Task Report_WithoutNonce_UsesAFreshRandomOne_AndReportsIt()
    {
        var (_, first) = await _node.GetJsonAsync("/v1/attestation/report");
        var (_, second) = await _node.GetJsonAsync("/v1/attestation/report");

        var nonce = first.GetProperty("request_nonce").GetString()!;
        Assert.Equal(64, nonce.Length);
        Assert.NotEqual(nonce, second.GetProperty("request_nonce").GetString());
        var quote = TdxQuote.Parse(Convert.FromHexString(first.GetProperty("intel_quote").GetString()!));
        Assert.Equal(Convert.FromHexString(nonce), quote.ReportData[32..].ToArray());
    }

    [Theory]
    [InlineData("nonce=abcd", 400)]
    [InlineData("nonce=zz00000000000000000000000000000000000000000000000000000000000000", 400)]
    [InlineData("signing_algo=rsa", 400)]
    [InlineData("signing_address=0x0000000000000000000000000000000000000001", 404)]
    [InlineData("signing_algo=ed25519&signing_address=00", 404)]
    public async Task Rejects_BadQueries(string query, int expected)
    {
        var (status, body) = await _node.GetJsonAsync("/v1/attestation/report?" + query);

        Assert.Equal(expected, status);
        Assert.True(body.GetProperty("error").TryGetProperty("message", out _));
    }

    [Fact]
    public async Task Report_ForOurOwnAddress_InAnyCase_IsServed()
    {
        var (_, report) = await _node.GetJsonAsync("/v1/attestation/report");
        var address = report.GetProperty("signing_address").GetString()!;

        var (status, again) = await _node.GetJsonAsync($"/v1/attestation/report?signing_address={address.ToLowerInvariant()}");

        Assert.Equal(200, status);
        Assert.Equal(address, again.GetProperty("signing_address").GetString());
    }
}

/// <summary>Peers: one report lists every node's attestation over the caller's nonce.</summary>
public sealed class PeerReportTests
{
    [Fact]
    public async Task Report_MergesPeerAttestations_OverTheSameNonce_AndNamesFailedPeers()
    {
        await using var node = await GatewayFixture.StartAsync();
        var peer = node.Client.BaseAddress!;
        var (_, front, _) = await node.StartGatewayAsync(o =>
        {
            o.Peers = [peer, new Uri("http://127.0.0.1:1/")];
            o.PeerToken = GatewayFixture.Token;
        });
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

        var (status, report) = await GatewayFixture.GetJsonAsync(front, $"/v1/attestation/report?nonce={nonce}");
        var (_, peerReport) = await node.GetJsonAsync("/v1/attestation/report");

        Assert.Equal(200, status);
        var all = report.GetProperty("all_attestations");
        Assert.Equal(2, all.GetArrayLength());
        Assert.Equal(report.GetProperty("signing_address").GetString(), all[0].GetProperty("signing_address").GetString());
        Assert.Equal(peerReport.GetProperty("signing_address").GetString(), all[1].GetProperty("signing_address").GetString());
        Assert.All(all.EnumerateArray(), a => Assert.Equal(nonce, a.GetProperty("request_nonce").GetString()));
        var quote = TdxQuote.Parse(Convert.FromHexString(all[1].GetProperty("intel_quote").GetString()!));
        Assert.Equal(Convert.FromHexString(nonce), quote.ReportData[32..].ToArray());
        Assert.Single(report.GetProperty("peer_errors").EnumerateArray());
    }
}

/// <summary>With a GPU evidence source (the simulator's), the report carries its evidence over the same nonce.</summary>
public sealed class GpuEvidenceReportTests
{
    [Fact]
    public async Task Report_CarriesGpuEvidence_OverTheQuoteNonce()
    {
        using var gpus = new PrivateMl.Tee.Simulator.Gpu.SimulatedGpuEvidenceSource(gpuCount: 2);
        await using var node = await GatewayFixture.StartAsync(services: s =>
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<PrivateMl.Tee.Gpu.IGpuEvidenceSource>(s, gpus));
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

        var (status, report) = await node.GetJsonAsync($"/v1/attestation/report?nonce={nonce}");

        Assert.Equal(200, status);
        var json = report.GetProperty("nvidia_payload").GetString()!;
        Assert.StartsWith("{\"nonce\": ", json, StringComparison.Ordinal);
        var payload = PrivateMl.Attestation.Nvidia.GpuEvidencePayload.Parse(json);
        Assert.Equal(nonce, payload.Nonce);
        Assert.Equal(2, payload.Items.Count);
        Assert.False(report.TryGetProperty("nvidia_payload_unavailable", out _));
    }
}
