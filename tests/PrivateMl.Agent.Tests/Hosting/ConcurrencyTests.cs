using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using static PrivateMl.Agent.Tests.AgentFixture;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>Many clients at once over the socket: every answer is the right one.</summary>
public sealed class ConcurrencyTests
{
    [Fact]
    public async Task SixtyFourParallelClients_EachGetTheirOwnQuote_WhileEventsAreEmitted()
    {
        await using var agent = await StartAsync();
        const int clients = 64;
        var tasks = Enumerable.Range(0, clients).Select(async i =>
        {
            // A separate HttpClient (own connection) per client.
            using var client = CreateClient(agent.Options.SocketPath!);
            var reportData = RandomBytes(64);
            if (i % 8 == 0)
            {
                var (emitStatus, _) = await PostAsync(client, "/EmitEvent", $"{{\"event\":\"client-{i}\",\"payload\":\"{i:x2}\"}}");
                Assert.Equal(200, emitStatus);
            }

            var (status, body) = await PostAsync(client, "/GetQuote", $"{{\"report_data\":\"{Hex(reportData)}\"}}");
            Assert.Equal(200, status);
            var quote = TdxQuote.Parse(Convert.FromHexString(body.GetProperty("quote").GetString()!));
            Assert.Equal(reportData, quote.ReportData.ToArray());
            var replay = RtmrReplay.Replay(TdxEventLog.Parse(body.GetProperty("event_log").GetString()!));
            Assert.Equal(quote.TdReport!.Rtmr3.ToArray(), replay.Rtmr3.ToArray());

            var (keyStatus, key) = await PostAsync(client, "/GetKey", $"{{\"path\":\"client/{i}\"}}");
            Assert.Equal(200, keyStatus);
            return key.GetProperty("key").GetString()!;
        }).ToArray();

        var keys = await Task.WhenAll(tasks);
        Assert.Equal(clients, keys.Distinct(StringComparer.Ordinal).Count());

        var (_, final) = await agent.PostAsync("/GetQuote", "{}");
        var events = TdxEventLog.Parse(final.GetProperty("event_log").GetString()!);
        Assert.Equal(clients / 8, events.Count(e => e.Event.StartsWith("client-", StringComparison.Ordinal)));
    }
}
