using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Proxy;

/// <summary>Non-streaming responses leave with a Content-Length (not chunked), and the signature covers exactly those bytes.</summary>
public sealed class ContentLengthTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync();

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    [Theory]
    [InlineData("test-model")]
    [InlineData("pretty")]
    public async Task NonStreaming_OnTheWire_HasContentLength_EqualToTheBody_AndIsSignedOverIt(string model)
    {
        var body = GatewayFixture.ChatBody(model, stream: false);
        var (head, received) = await RawPostAsync(body);

        var headers = head.Split("\r\n").Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
        Assert.StartsWith("HTTP/1.1 200", head, StringComparison.Ordinal);
        Assert.False(headers.ContainsKey("transfer-encoding"), head);
        Assert.Equal(received.Length, long.Parse(headers["content-length"], CultureInfo.InvariantCulture));

        var id = GatewayFixture.ResponseId(new Exchange(200, received, null, "application/json"));
        var (status, signature) = await _node.GetJsonAsync($"/v1/signature/{id}");
        Assert.Equal(200, status);
        Assert.Equal(Hex(SHA256.HashData(body)) + ":" + Hex(SHA256.HashData(received)), signature.GetProperty("text").GetString());
    }

    [Fact]
    public async Task NonStreaming_ThroughHttpClient_ContentLengthHeader_MatchesTheBytesRead()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes("{\"model\":\"test-model\",\"prompt\":\"hi\"}")),
        };
        using var response = await _node.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var bytes = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotEqual(true, response.Headers.TransferEncodingChunked);
        Assert.Equal(bytes.Length, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task Streaming_StaysChunked()
    {
        var (head, _) = await RawPostAsync(GatewayFixture.ChatBody("test-model", stream: true));

        Assert.Contains("Transfer-Encoding: chunked", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Content-Length", head, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task NonStreaming_UpstreamBreaksOffMidBody_Is502_WithoutReceipt()
    {
        _node.Upstream.SlowDelay = TimeSpan.FromMilliseconds(20);
        var exchange = await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("reset", stream: false));

        Assert.Equal(502, exchange.Status);
        Assert.Null(exchange.ReceiptId);
        Assert.Contains("upstream_incomplete", exchange.Text, StringComparison.Ordinal);
        Assert.Equal(200, (await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: false))).Status);
    }

    [Fact]
    public async Task NonStreaming_LargerThanTheLimit_Is502_WithoutReceipt()
    {
        var (_, client, _) = await _node.StartGatewayAsync(o => o.MaxObservedBodyBytes = 1024);

        var large = await GatewayFixture.PostAsync(client, "/v1/chat/completions", GatewayFixture.ChatBody("large", stream: false));
        var small = await GatewayFixture.PostAsync(client, "/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: false));

        Assert.Equal(502, large.Status);
        Assert.Null(large.ReceiptId);
        Assert.Equal(200, small.Status);
        Assert.NotNull(small.ReceiptId);
    }

    /// <summary>One HTTP/1.1 exchange over a plain socket: the header block as text and the body bytes as sent.</summary>
    private async Task<(string Head, byte[] Body)> RawPostAsync(byte[] body)
    {
        var ct = TestContext.Current.CancellationToken;
        var address = _node.Client.BaseAddress!;
        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port, ct);
        var stream = socket.GetStream();
        var request = $"POST /v1/chat/completions HTTP/1.1\r\nHost: {address.Authority}\r\nAuthorization: Bearer {GatewayFixture.Token}\r\n" +
            $"Content-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), ct);
        await stream.WriteAsync(body, ct);
        using var all = new MemoryStream();
        await stream.CopyToAsync(all, ct);
        var bytes = all.ToArray();
        var end = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
        Assert.True(end > 0);
        return (Encoding.ASCII.GetString(bytes, 0, end), bytes[(end + 4)..]);
    }

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
