using System.Text.Json;
using PrivateMl.Gateway.Tests.Support;
using PrivateMl.Inference;
using PrivateMl.Inference.Upstream;

namespace PrivateMl.Gateway.Tests.Proxy;

/// <summary>Body size, concurrency and upstream time limits, and an unreachable upstream.</summary>
public sealed class LimitTests
{
    [Fact]
    public async Task Rejects_BodyOverTheLimit_With413_WithoutCallingTheUpstream()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.MaxRequestBodyBytes = 1024);
        var big = GatewayFixture.ChatBody("test-model", false, new string('x', 2048));

        var exchange = await node.PostAsync("/v1/chat/completions", big);
        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StreamContent(new MemoryStream(big)) };
        chunked.Headers.TransferEncodingChunked = true;
        using var streamed = await node.Client.SendAsync(chunked, TestContext.Current.CancellationToken);

        Assert.Equal(413, exchange.Status);
        Assert.Equal(413, (int)streamed.StatusCode);
        Assert.Empty(node.Upstream.Received);
        Assert.Equal(200, (await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false))).Status);
    }

    [Fact]
    public async Task Rejects_RequestsOverTheConcurrencyLimit_With429()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.MaxConcurrentStreams = 1);
        node.Upstream.SlowDelay = TimeSpan.FromMilliseconds(300);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(GatewayFixture.ChatBody("slow", true)) };
        using var first = await node.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);

        var second = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));

        Assert.Equal(429, second.Status);
        using var doc = JsonDocument.Parse(second.Body);
        Assert.Equal("rate_limit_error", doc.RootElement.GetProperty("error").GetProperty("type").GetString());
        var rest = await first.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.EndsWith("data: [DONE]\n\n", rest, StringComparison.Ordinal);
        Assert.Equal(200, (await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false))).Status);
    }

    [Fact]
    public async Task UpstreamIdleLongerThanTheTimeout_AbortsTheStream_Unsigned()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.UpstreamIdleTimeout = TimeSpan.FromMilliseconds(50));
        node.Upstream.SlowDelay = TimeSpan.FromSeconds(2);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(GatewayFixture.ChatBody("slow", true)) };
        using var response = await node.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var receiptId = response.Headers.GetValues("X-Receipt-Id").Single();

        await Assert.ThrowsAnyAsync<Exception>(async () => await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));

        Assert.Equal(404, (await node.GetJsonAsync($"/v1/signature/{receiptId}")).Status);
    }

    [Fact]
    public async Task UpstreamSilentAfterItsHeaders_LongerThanTheTimeout_AbortsTheStream_Unsigned()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.UpstreamIdleTimeout = TimeSpan.FromMilliseconds(100));
        node.Upstream.SlowDelay = TimeSpan.FromSeconds(5);

        // Nothing of the body reached the client, so the abort may end the request before its headers do.
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(GatewayFixture.ChatBody("late", true)) };
            using var response = await node.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
            await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        });

        var chatId = Assert.Single(node.Upstream.Received.Keys);
        Assert.Equal(404, (await node.GetJsonAsync($"/v1/signature/{chatId}")).Status);
    }

    [Fact]
    public async Task UpstreamSlowToStart_WithinTheTimeout_IsRelayedAndSigned()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.UpstreamIdleTimeout = TimeSpan.FromSeconds(10));
        node.Upstream.SlowDelay = TimeSpan.FromMilliseconds(300);

        var exchange = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("late", true));

        Assert.Equal(200, exchange.Status);
        Assert.EndsWith("data: [DONE]\n\n", exchange.Text, StringComparison.Ordinal);
        Assert.Equal(200, (await node.GetJsonAsync($"/v1/signature/{exchange.ReceiptId}")).Status);
    }

    [Fact]
    public async Task UnreachableUpstream_Is502_InOpenAiShape()
    {
        await using var node = await GatewayFixture.StartAsync();
        using var dead = new UpstreamHttpBackend(new UpstreamHttpBackendOptions { BaseAddress = new Uri("http://127.0.0.1:1") });

        await Assert.ThrowsAsync<BackendUnavailableException>(() =>
            dead.SendAsync(new BackendRequest(HttpMethod.Get, "/v1/models", ReadOnlyMemory<byte>.Empty), TestContext.Current.CancellationToken));

        var (app, client, _) = await node.StartGatewayAsync();
        _ = app;
        await node.Upstream.DisposeAsync();
        var exchange = await GatewayFixture.PostAsync(client, "/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));
        Assert.Equal(502, exchange.Status);
        using var doc = JsonDocument.Parse(exchange.Body);
        Assert.Equal("upstream_unavailable", doc.RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}
