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
}
