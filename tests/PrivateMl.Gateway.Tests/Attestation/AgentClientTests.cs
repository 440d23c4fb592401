using System.Text.Json;
using PrivateMl.Agent.Client;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Attestation;

/// <summary>The gateway's dstack client against the real simulated agent on its Unix socket.</summary>
public sealed class AgentClientTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync();

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task GetQuote_CarriesTheReportData()
    {
        var reportData = new byte[64];
        reportData[0] = 0xAB;
        reportData[63] = 0xCD;

        var quote = await _node.Agent.GetQuoteAsync(reportData, TestContext.Current.CancellationToken);

        Assert.Equal(reportData, TdxQuote.Parse(quote.Quote).ReportData.ToArray());
        Assert.NotEmpty(TdxEventLog.Parse(quote.EventLog));
    }

    [Fact]
    public async Task GetKey_IsDeterministicPerPath_AndAgentDerivedGatewayKeysAreStable()
    {
        var ct = TestContext.Current.CancellationToken;
        var a = await _node.Agent.GetKeyAsync("p/1", "signing", "secp256k1", ct);
        var b = await _node.Agent.GetKeyAsync("p/1", "signing", "secp256k1", ct);
        var c = await _node.Agent.GetKeyAsync("p/2", "signing", "secp256k1", ct);
        Assert.Equal(a.Key, b.Key);
        Assert.NotEqual(a.Key, c.Key);
        Assert.NotEmpty(a.SignatureChain);

        var (_, one, _) = await _node.StartGatewayAsync(o => o.KeySource = SigningKeySource.Agent);
        var (_, two, _) = await _node.StartGatewayAsync(o => o.KeySource = SigningKeySource.Agent);
        var (_, r1) = await GatewayFixture.GetJsonAsync(one, "/v1/attestation/report");
        var (_, r2) = await GatewayFixture.GetJsonAsync(two, "/v1/attestation/report");
        var (_, random) = await _node.GetJsonAsync("/v1/attestation/report");
        Assert.Equal(r1.GetProperty("signing_address").GetString(), r2.GetProperty("signing_address").GetString());
        Assert.NotEqual(r1.GetProperty("signing_address").GetString(), random.GetProperty("signing_address").GetString());
    }

    [Fact]
    public async Task Info_AndEmitEvent_ExtendRtmr3()
    {
        var ct = TestContext.Current.CancellationToken;
        using var before = JsonDocument.Parse(await _node.Agent.InfoAsync(ct));
        Assert.True(before.RootElement.TryGetProperty("tcb_info", out _));

        await _node.Agent.EmitEventAsync("gateway-test", "payload"u8.ToArray(), ct);

        var quote = await _node.Agent.GetQuoteAsync(new byte[64], ct);
        var events = TdxEventLog.Parse(quote.EventLog);
        Assert.Contains(events, e => e.Event == "gateway-test");
        Assert.Equal(TdxQuote.Parse(quote.Quote).TdReport!.Rtmr3.ToArray(), RtmrReplay.Replay(events).Rtmr3.ToArray());
    }

    [Fact]
    public async Task UnreachableSocket_IsADstackAgentException()
    {
        using var client = new DstackAgentClient(Path.Combine(_node.Directory, "absent.sock"));

        await Assert.ThrowsAsync<DstackAgentException>(() => client.InfoAsync(TestContext.Current.CancellationToken));
    }
}
