using System.Text.Json;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.E2ee.Aci;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.E2ee;

/// <summary>
/// With Redis configured, the ACI replay claims are shared by every gateway instance (e2ee-v2.md §7: replicas sharing
/// a keyset MUST share replay state): a request replayed to another instance is refused and never reaches the model.
/// </summary>
public sealed class AciSharedReplayTests
{
    [Fact]
    public async Task A_request_replayed_to_another_instance_is_refused_there()
    {
        using var redis = await RedisServer.StartAsync();
        await using var node = await GatewayFixture.StartAsync(o =>
        {
            o.RedisConnection = redis.ConnectionString;
            o.KeySource = SigningKeySource.Agent;
        });
        var (_, second, _) = await node.StartGatewayAsync(o =>
        {
            o.RedisConnection = redis.ConnectionString;
            o.KeySource = SigningKeySource.Agent;
        });
        var (_, report) = await node.GetJsonAsync("/v1/attestation/report?format=aci");
        var keyset = WorkloadKeyset.Parse(report.GetProperty("attestation").GetProperty("workload_keyset"));
        var request = AciTestRequest.Create(keyset, AciSuite.X25519, "test-model", false, "a secret about otters");
        var (body, headers) = (request.Body, request.Headers);

        var first = await node.PostAsync("/v1/chat/completions", body, request.AddHeaders);
        Assert.Equal(200, first.Status);
        var forwarded = node.Upstream.Received.Count;

        var replayed = await GatewayFixture.PostAsync(second, "/v1/chat/completions", body, request.AddHeaders);

        Assert.Equal(400, replayed.Status);
        Assert.Equal("e2ee_replay_detected", Code(replayed));
        Assert.Contains("already used", replayed.Text, StringComparison.Ordinal);
        Assert.Equal(forwarded, node.Upstream.Received.Count);

        // The claim lives in Redis until the request's timestamp has left the ±300 s window.
        using var raw = StackExchange.Redis.ConnectionMultiplexer.Connect(redis.ConnectionString);
        var client = Convert.FromHexString(headers[AciHeaders.ClientPublicKey]);
        var service = Convert.FromHexString(headers[AciHeaders.ModelPublicKey]);
        var key = RedisAciReplayStore.KeyPrefix + AciReplayCache.DigestOf(client, service, headers[AciHeaders.Nonce]);
        var ttl = await raw.GetDatabase().KeyTimeToLiveAsync(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value.TotalSeconds, 1, AciHeaders.Window.TotalSeconds + 1);

        // A fresh request (new nonce) from the same client still goes through on the second instance.
        var fresh = AciTestRequest.Create(keyset, AciSuite.X25519, "test-model", false, "a secret about otters");
        Assert.Equal(200, (await GatewayFixture.PostAsync(second, "/v1/chat/completions", fresh.Body, fresh.AddHeaders)).Status);
    }

    [Fact]
    public async Task An_unreachable_redis_refuses_instead_of_letting_the_request_through()
    {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        await using var store = RedisAciReplayStore.Connect("127.0.0.1:1,connectTimeout=500,asyncTimeout=500,syncTimeout=500", TimeProvider.System);
        var outcome = await store.TryClaimAsync(new byte[32], new byte[32], new string('a', 64), DateTimeOffset.UtcNow.ToUnixTimeSeconds(), TestContext.Current.CancellationToken);
        Assert.Equal(AciReplayOutcome.Unavailable, outcome);
    }

    private static string Code(Exchange e)
    {
        using var doc = JsonDocument.Parse(e.Body);
        return doc.RootElement.GetProperty("error").GetProperty("code").GetString()!;
    }
}
