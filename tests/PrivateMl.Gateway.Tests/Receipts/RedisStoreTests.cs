using System.Security.Cryptography;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Receipts;

/// <summary>Fleets: gateways sharing a real redis-server serve each other's receipts, across restarts.</summary>
public sealed class RedisStoreTests
{
    [Fact]
    public async Task ReceiptWrittenThroughOneInstance_IsServedByAnother_AndSurvivesARestart()
    {
        using var redis = await RedisServer.StartAsync();
        await using var node = await GatewayFixture.StartAsync(o => o.RedisConnection = redis.ConnectionString);
        var (second, secondClient, _) = await node.StartGatewayAsync(o => o.RedisConnection = redis.ConnectionString);
        var body = GatewayFixture.ChatBody("test-model", stream: true);

        var exchange = await node.PostAsync("/v1/chat/completions", body);
        var id = GatewayFixture.ResponseId(exchange);

        var (status, signature) = await GatewayFixture.GetJsonAsync(secondClient, $"/v1/signature/{id}");
        Assert.Equal(200, status);
        var expected = Convert.ToHexStringLower(SHA256.HashData(body)) + ":" + Convert.ToHexStringLower(SHA256.HashData(exchange.Body));
        Assert.Equal(expected, signature.GetProperty("text").GetString());

        await second.StopAsync(TestContext.Current.CancellationToken);
        var (_, restartedClient, _) = await node.StartGatewayAsync(o => o.RedisConnection = redis.ConnectionString);
        using var response = await restartedClient.GetAsync($"/v1/receipt/{exchange.ReceiptId}", TestContext.Current.CancellationToken);
        var receipt = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(SignedReceipt.Verify(receipt, null, body, exchange.Body, checkBodies: true).Valid);
        Assert.Equal(404, (await GatewayFixture.GetJsonAsync(restartedClient, "/v1/signature/never-seen")).Status);
    }

    [Fact]
    public async Task While_redis_is_down_responses_are_cut_unsigned_and_signing_resumes_when_it_returns()
    {
        var redis = await RedisServer.StartAsync();
        var port = redis.Port;
        try
        {
            // Commands wait at most a second for a lost Redis instead of the client library's five.
            await using var node = await GatewayFixture.StartAsync(o => o.RedisConnection = redis.ConnectionString + ",asyncTimeout=1000,syncTimeout=1000");
            var before = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: false));
            Assert.Equal(200, (await node.GetJsonAsync($"/v1/signature/{before.ReceiptId}")).Status);

            redis.Dispose();
            foreach (var stream in new[] { false, true })
            {
                await Assert.ThrowsAnyAsync<Exception>(() => node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream)));
            }

            using var health = await node.Client.GetAsync("/health", TestContext.Current.CancellationToken);
            Assert.Equal(200, (int)health.StatusCode);

            redis = await RedisServer.StartAsync(port);
            var after = await UntilSignedAsync(node);
            var (status, signature) = await node.GetJsonAsync($"/v1/signature/{after.ReceiptId}");
            Assert.Equal(200, status);
            Assert.EndsWith(":" + Convert.ToHexStringLower(SHA256.HashData(after.Body)), signature.GetProperty("text").GetString(), StringComparison.Ordinal);
        }
        finally
        {
            redis.Dispose();
        }
    }

    /// <summary>Sends until a response arrives whole (the client library reconnects with a back-off); a minute at most.</summary>
    private static async Task<Exchange> UntilSignedAsync(GatewayFixture node)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        limit.CancelAfter(TimeSpan.FromMinutes(1));
        while (true)
        {
            try
            {
                var exchange = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: true));
                if (exchange.Status == 200)
                {
                    return exchange;
                }
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
            }

            await Task.Delay(100, limit.Token);
        }
    }
}
