using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Signing;
using PrivateMl.Gateway.Tests.Support;
using PrivateMl.Inference.Upstream;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Proxy;

/// <summary>The relay against a real upstream on loopback: exact bytes both ways, signatures over them, faults.</summary>
public class RelayTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync(Configure, client: Client);

    protected virtual void Configure(GatewayOptions options)
    {
    }

    /// <summary>What carries requests to the upstream: serve's default (sockets for http) unless a subclass names another.</summary>
    protected virtual UpstreamClient Client => UpstreamClient.Auto;

    public async ValueTask DisposeAsync()
    {
        await _node.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    [Theory]
    [InlineData("/v1/chat/completions", "test-model", false)]
    [InlineData("/v1/chat/completions", "test-model", true)]
    [InlineData("/v1/chat/completions", "batched", true)]
    [InlineData("/v1/chat/completions", "split", true)]
    [InlineData("/v1/chat/completions", "pretty", false)]
    [InlineData("/v1/completions", "test-model", false)]
    [InlineData("/v1/completions", "test-model", true)]
    public async Task Signs_ExactRequestAndResponseBytes_WithBothKeys(string path, string model, bool stream)
    {
        var body = path == "/v1/completions"
            ? Encoding.UTF8.GetBytes($"{{ \"model\": \"{model}\", \"prompt\": \"hi\", \"stream\": {(stream ? "true" : "false")} }}")
            : GatewayFixture.ChatBody(model, stream);

        var exchange = await _node.PostAsync(path, body);

        Assert.Equal(200, exchange.Status);
        var id = GatewayFixture.ResponseId(exchange);
        Assert.Equal(body, _node.Upstream.Received[id]);
        if (stream)
        {
            Assert.Equal(string.Concat(FakeUpstream.Events(id, model, path == "/v1/chat/completions")), exchange.Text);
        }

        var expectedText = Hex(SHA256.HashData(body)) + ":" + Hex(SHA256.HashData(exchange.Body));
        var (status, ecdsa) = await _node.GetJsonAsync($"/v1/signature/{id}?signing_algo=ecdsa");
        Assert.Equal(200, status);
        Assert.Equal(["text", "signature", "signing_address", "signing_algo"], ecdsa.EnumerateObject().Select(p => p.Name));
        Assert.Equal(expectedText, ecdsa.GetProperty("text").GetString());
        Assert.Equal("ecdsa", ecdsa.GetProperty("signing_algo").GetString());
        Assert.Equal(ecdsa.GetProperty("signing_address").GetString(), EthereumSigner.RecoverAddress(expectedText, ecdsa.GetProperty("signature").GetString()!));

        var (_, ed) = await _node.GetJsonAsync($"/v1/signature/{id}?signing_algo=ed25519");
        Assert.Equal(expectedText, ed.GetProperty("text").GetString());
        Assert.True(Ed25519Signer.Verify(
            Convert.FromHexString(ed.GetProperty("signing_address").GetString()!),
            Encoding.UTF8.GetBytes(expectedText),
            Convert.FromHexString(ed.GetProperty("signature").GetString()!)));

        // The same record is reachable under the gateway's receipt id.
        var (byReceipt, viaReceiptId) = await _node.GetJsonAsync($"/v1/signature/{exchange.ReceiptId}");
        Assert.Equal(200, byReceipt);
        Assert.Equal(expectedText, viaReceiptId.GetProperty("text").GetString());
    }

    [Theory]
    [InlineData("/v1/chat/completions", 200)]
    [InlineData("/V1/Chat/Completions", 200)]
    [InlineData("/v1/chat/completions/", 200)]
    [InlineData("/v1/chat/completions/x", 404)]
    public async Task EverySpellingRoutingAccepts_ReachesTheRelay_AndIsSigned(string path, int expected)
    {
        var body = GatewayFixture.ChatBody("test-model", stream: true);

        var exchange = await _node.PostAsync(path, body);

        Assert.Equal(expected, exchange.Status);
        if (expected == 200)
        {
            var id = GatewayFixture.ResponseId(exchange);
            Assert.Equal(body, _node.Upstream.Received[id]);
            var (status, signature) = await _node.GetJsonAsync($"/v1/signature/{id}");
            Assert.Equal(200, status);
            Assert.Equal(Hex(SHA256.HashData(body)) + ":" + Hex(SHA256.HashData(exchange.Body)), signature.GetProperty("text").GetString());
        }
    }

    [Fact]
    public async Task AnotherMethodOnTheModelsRoute_Is405_AndNeverReachesTheUpstream()
    {
        using var response = await _node.Client.GetAsync("/v1/chat/completions", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("POST", response.Content.Headers.Allow);
        Assert.Empty(_node.Upstream.Received);
    }

    [Fact]
    public async Task Receipt_VerifiesOffline_AgainstTheExactBytes_AndRejectsTampering()
    {
        var body = GatewayFixture.ChatBody("test-model", stream: true);
        var exchange = await _node.PostAsync("/v1/chat/completions", body);
        var id = GatewayFixture.ResponseId(exchange);
        using var response = await _node.Client.GetAsync($"/v1/receipt/{id}", TestContext.Current.CancellationToken);
        var receipt = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        var (_, report) = await _node.GetJsonAsync("/v1/attestation/report?signing_algo=ed25519");
        var trustedKey = report.GetProperty("signing_address").GetString();

        var verified = SignedReceipt.Verify(receipt, trustedKey, body, exchange.Body, checkBodies: true);

        Assert.True(verified.Valid, verified.Reason);
        Assert.Equal(exchange.ReceiptId, verified.ReceiptId);
        using var doc = JsonDocument.Parse(receipt);
        Assert.Equal(id, doc.RootElement.GetProperty("chat_id").GetString());
        Assert.Equal("test-model", doc.RootElement.GetProperty("model").GetString());

        Assert.False(SignedReceipt.Verify(receipt.Replace("test-model", "evil-model", StringComparison.Ordinal), trustedKey).Valid);
        Assert.False(SignedReceipt.Verify(receipt, trustedKey, body, [.. exchange.Body, (byte)' '], checkBodies: true).Valid);
        Assert.False(SignedReceipt.Verify(receipt, new string('a', 64)).Valid);
        Assert.False(SignedReceipt.Verify("{not json").Valid);
    }

    [Fact]
    public async Task ClientRequestHashHeader_NeverEntersTheSignedText()
    {
        var body = GatewayFixture.ChatBody("test-model", stream: false);
        var forged = new string('0', 64);

        var exchange = await _node.PostAsync("/v1/chat/completions", body, r => r.Headers.Add("X-Request-Hash", forged));

        var (_, signature) = await _node.GetJsonAsync($"/v1/signature/{GatewayFixture.ResponseId(exchange)}");
        var text = signature.GetProperty("text").GetString()!;
        Assert.StartsWith(Hex(SHA256.HashData(body)) + ":", text, StringComparison.Ordinal);
        Assert.DoesNotContain(forged, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Upstream500_IsRelayedInOpenAiShape_Unsigned_AndTheGatewayKeepsServing()
    {
        var exchange = await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("fault-500", stream: false));

        Assert.Equal(500, exchange.Status);
        Assert.Null(exchange.ReceiptId);
        using var doc = JsonDocument.Parse(exchange.Body);
        Assert.Equal("boom in the model", doc.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal("InternalServerError", doc.RootElement.GetProperty("error").GetProperty("type").GetString());

        var next = await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: true));
        Assert.Equal(200, next.Status);
    }

    [Theory]
    [InlineData("reset")]
    [InlineData("no-done")]
    public async Task BrokenStream_IsAbortedToTheClient_AndNeverSigned(string model)
    {
        var signedBefore = await MetricAsync("privateml_gateway_signed_responses_total");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(GatewayFixture.ChatBody(model, stream: true)) };

        // The client never gets a complete 2xx: either the connection breaks before the headers are read, or the
        // body breaks off (no chunked terminator).
        string? receiptId = null;
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var response = await _node.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            receiptId = response.Headers.GetValues("X-Receipt-Id").Single();
            await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        });

        if (receiptId is not null)
        {
            Assert.Equal(404, (await _node.GetJsonAsync($"/v1/signature/{receiptId}")).Status);
        }

        Assert.True(await WaitForMetricAsync("privateml_gateway_aborted_responses_total", v => v >= 1) >= 1);
        Assert.Equal(signedBefore, await MetricAsync("privateml_gateway_signed_responses_total"));
        var next = await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: true));
        Assert.Equal(200, next.Status);
    }

    [Fact]
    public async Task ClientGoneMidStream_LeavesNoSignature()
    {
        _node.Upstream.SlowDelay = TimeSpan.FromSeconds(1);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(GatewayFixture.ChatBody("slow", stream: true)) };
        request.Headers.Authorization = _node.Client.DefaultRequestHeaders.Authorization;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);

        // A client that closes the connection instead of draining the rest of the body (HttpClient's default).
        using var impatient = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = _node.Client.BaseAddress };
        var response = await impatient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var receiptId = response.Headers.GetValues("X-Receipt-Id").Single();
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        var first = new byte[16];
        Assert.True(await stream.ReadAsync(first, cts.Token) > 0);
        response.Dispose();
        await cts.CancelAsync();

        // Wait (bounded) until the gateway has noticed the abort, then check nothing was stored.
        var aborted = await WaitForMetricAsync("privateml_gateway_aborted_responses_total", v => v >= 1);
        Assert.True(aborted >= 1);
        var (status, _) = await _node.GetJsonAsync($"/v1/signature/{receiptId}");
        Assert.Equal(404, status);
    }

    [Fact]
    public async Task Models_AndMetrics_PassThrough_WithOurOwnMetricsAppended()
    {
        using var anonymous = new HttpClient { BaseAddress = _node.Client.BaseAddress };
        var (status, models) = await GatewayFixture.GetJsonAsync(anonymous, "/v1/models");
        Assert.Equal(200, status);
        Assert.Equal("test-model", models.GetProperty("data")[0].GetProperty("id").GetString());

        await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: true));
        var metrics = await anonymous.GetStringAsync("/v1/metrics", TestContext.Current.CancellationToken);
        Assert.Contains("vllm_fake_requests 7", metrics, StringComparison.Ordinal);
        Assert.Contains("privateml_gateway_signed_responses_total 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"privateml_gateway_completion_tokens_total {FakeUpstream.Tokens}", metrics, StringComparison.Ordinal);
        Assert.Contains("privateml_gateway_signing_seconds_count 1", metrics, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer wrong-token")]
    [InlineData("Basic dGVzdA==")]
    public async Task Rejects_MissingOrWrongBearerToken(string? authorization)
    {
        using var client = new HttpClient { BaseAddress = _node.Client.BaseAddress };
        if (authorization is not null)
        {
            client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", authorization);
        }

        var chat = await GatewayFixture.PostAsync(client, "/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));
        var (signature, _) = await GatewayFixture.GetJsonAsync(client, "/v1/signature/anything");
        var (report, _) = await GatewayFixture.GetJsonAsync(client, "/v1/attestation/report");

        Assert.Equal(401, chat.Status);
        Assert.Equal(401, signature);
        Assert.Equal(401, report);
        Assert.Empty(_node.Upstream.Received);
    }

    [Fact]
    public async Task Signature_UnknownId_Is404_AndBadAlgo_Is400()
    {
        var (missing, body) = await _node.GetJsonAsync("/v1/signature/chatcmpl-nope");
        var (badAlgo, _) = await _node.GetJsonAsync("/v1/signature/chatcmpl-nope?signing_algo=rsa");

        Assert.Equal(404, missing);
        Assert.Equal("not_found", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(400, badAlgo);
    }

    [Fact]
    public async Task Health_AndReadiness_AreOpen()
    {
        using var anonymous = new HttpClient { BaseAddress = _node.Client.BaseAddress };
        Assert.Equal(200, (await GatewayFixture.GetJsonAsync(anonymous, "/health")).Status);
        var (ready, body) = await GatewayFixture.GetJsonAsync(anonymous, "/ready");
        Assert.Equal(200, ready);
        Assert.Equal("ready", body.GetProperty("status").GetString());
    }

    private async Task<long> MetricAsync(string name) => await WaitForMetricAsync(name, _ => true);

    private async Task<long> WaitForMetricAsync(string name, Func<long, bool> done)
    {
        long value = -1;
        for (var i = 0; i < 200; i++)
        {
            var text = await _node.Client.GetStringAsync("/v1/metrics", TestContext.Current.CancellationToken);
            var line = text.Split('\n').First(l => l.StartsWith(name + " ", StringComparison.Ordinal));
            value = long.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            if (done(value))
            {
                return value;
            }

            await Task.Delay(25, TestContext.Current.CancellationToken);
        }

        return value;
    }

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}

/// <summary>
/// Every relay test again with requests handled and responses sent on Kestrel's socket threads
/// (<see cref="GatewayOptions.InlineSocketScheduling"/>, <c>serve --inline-io</c>): the same bytes, signatures and faults.
/// </summary>
public sealed class InlineIoRelayTests : RelayTests
{
    protected override void Configure(GatewayOptions options) => options.InlineSocketScheduling = true;
}

/// <summary>
/// Every relay test again with <see cref="SocketsHttpHandler"/> carrying the requests to the upstream
/// (<c>serve --upstream-client httpclient</c>, and what an https upstream gets): the same bytes, signatures and faults.
/// </summary>
public sealed class HttpClientRelayTests : RelayTests
{
    protected override UpstreamClient Client => UpstreamClient.HttpClient;
}
