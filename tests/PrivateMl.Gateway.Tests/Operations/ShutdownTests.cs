using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Operations;

/// <summary>
/// A graceful stop: readiness turns to 503 while the gateway still serves for the drain delay, a completion in flight
/// when the listeners close still finishes and is signed, and one that outlives the shutdown timeout is cut, unsigned.
/// </summary>
public sealed class ShutdownTests
{
    [Fact]
    public async Task A_stream_in_flight_when_the_stop_begins_finishes_and_is_signed()
    {
        await using var node = await GatewayFixture.StartAsync();
        var store = node.Gateway.Services.GetRequiredService<ISignatureStore>();
        var ct = TestContext.Current.CancellationToken;
        using var response = await SendStreamAsync(node.Client, "gated");
        var receiptId = response.Headers.GetValues("X-Receipt-Id").Single();
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var received = new MemoryStream();
        await ReadUntilAsync(body, received, "\n\n");

        var stopping = node.Gateway.StopAsync(ct);
        node.Upstream.Gate.SetResult();
        await body.CopyToAsync(received, ct);
        await stopping;

        var bytes = received.ToArray();
        Assert.EndsWith("data: [DONE]\n\n", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        var record = await store.GetAsync(receiptId, ct);
        Assert.NotNull(record);
        Assert.EndsWith(":" + Convert.ToHexStringLower(SHA256.HashData(bytes)), record.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stream_that_outlives_the_shutdown_timeout_is_cut_and_not_signed()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
        var store = node.Gateway.Services.GetRequiredService<ISignatureStore>();
        var ct = TestContext.Current.CancellationToken;
        using var response = await SendStreamAsync(node.Client, "gated");
        var receiptId = response.Headers.GetValues("X-Receipt-Id").Single();
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        await ReadUntilAsync(body, new MemoryStream(), "\n\n");

        // The upstream never sends the rest: only the deadline ends this stop.
        await node.Gateway.StopAsync(ct);

        await Assert.ThrowsAnyAsync<Exception>(async () => await body.CopyToAsync(Stream.Null, ct));
        Assert.Null(await store.GetAsync(receiptId, ct));
        var chatId = Assert.Single(node.Upstream.Received.Keys);
        Assert.Null(await store.GetAsync(chatId, ct));
    }

    [Fact]
    public async Task During_the_drain_delay_ready_answers_503_and_completions_are_still_served_and_signed()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.DrainDelay = TimeSpan.FromMinutes(5));
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal(200, (await node.GetJsonAsync("/ready")).Status);
        using var hurry = CancellationTokenSource.CreateLinkedTokenSource(ct);

        var stopping = node.Gateway.StopAsync(hurry.Token);
        var (status, ready) = await node.GetJsonAsync("/ready");
        var exchange = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: false));
        var signature = await node.GetJsonAsync($"/v1/signature/{exchange.ReceiptId}?signing_algo=ecdsa");
        Assert.False(stopping.IsCompleted);
        await hurry.CancelAsync();
        await stopping;

        Assert.Equal(503, status);
        Assert.Equal("stopping", ready.GetProperty("status").GetString());
        Assert.Equal(200, exchange.Status);
        Assert.Equal(200, signature.Status);
        Assert.EndsWith(":" + Convert.ToHexStringLower(SHA256.HashData(exchange.Body)), signature.Body.GetProperty("text").GetString(), StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => node.Client.GetAsync("/health", ct));
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(0, -1)]
    public void Negative_drain_or_shutdown_times_are_refused(int drainSeconds, int shutdownSeconds)
    {
        var options = new GatewayOptions { DrainDelay = TimeSpan.FromSeconds(drainSeconds), ShutdownTimeout = TimeSpan.FromSeconds(shutdownSeconds) };

        Assert.Throws<ArgumentException>(options.Validate);
    }

    private static async Task<HttpResponseMessage> SendStreamAsync(HttpClient client, string model)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(GatewayFixture.ChatBody(model, stream: true)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        Assert.Equal(200, (int)response.StatusCode);
        return response;
    }

    /// <summary>Reads into <paramref name="sink"/> until what was read ends with <paramref name="end"/> (one whole event).</summary>
    private static async Task ReadUntilAsync(Stream body, MemoryStream sink, string end)
    {
        var buffer = new byte[1];
        while (!Encoding.UTF8.GetString(sink.GetBuffer(), 0, (int)sink.Length).EndsWith(end, StringComparison.Ordinal))
        {
            var read = await body.ReadAsync(buffer, TestContext.Current.CancellationToken);
            Assert.NotEqual(0, read);
            sink.Write(buffer, 0, read);
        }
    }
}
