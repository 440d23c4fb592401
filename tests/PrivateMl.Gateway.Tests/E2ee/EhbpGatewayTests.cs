using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Aci;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.Gateway.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.E2ee;

/// <summary>
/// EHBP through a whole simulated node (real upstream, agent over the software TDX, gateway), spoken with the E2ee
/// library directly: keys, encrypted chats both ways, signatures over the ciphertext, and every refusal.
/// </summary>
public sealed class EhbpGatewayTests : IAsyncLifetime
{
    private const string Prompt = "my-secret-prompt-7f3a";
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync();

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Keys_are_served_without_a_token_and_are_the_attested_keyset_entry()
    {
        using var anonymous = new HttpClient { BaseAddress = _node.Client.BaseAddress };
        using var response = await anonymous.GetAsync(EhbpProtocol.KeysPath, TestContext.Current.CancellationToken);
        var config = EhbpKeyConfig.ParseFirst(await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(EhbpProtocol.KeysMediaType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(Convert.ToHexStringLower(config.PublicKey), (await KeysetEntryAsync()).PublicKey);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Encrypted_chat_round_trips_and_the_wire_carries_no_plaintext(bool stream)
    {
        await using var capture = new LoopbackCapture(_node.Client.BaseAddress!);
        using var http = new HttpClient { BaseAddress = capture.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", GatewayFixture.Token);
        // "slow" pauses between events, so each reaches the gateway (and is sealed) on its own.
        _node.Upstream.SlowDelay = TimeSpan.FromMilliseconds(20);
        var model = stream ? "slow" : "test-model";
        var body = GatewayFixture.ChatBody(model, stream, Prompt);

        var result = await SendAsync(http, body);

        Assert.Equal(200, result.Status);
        Assert.NotNull(result.NonceHeader);
        Assert.False(result.NotChunked);
        var plaintext = Encoding.UTF8.GetString(result.Plaintext);
        var id = ResponseId(plaintext, stream);
        Assert.Equal(body, _node.Upstream.Received[id]);
        if (stream)
        {
            Assert.Equal(string.Concat(FakeUpstream.Events(id, model, chat: true)), plaintext);
            Assert.True(result.Frames > 1, "a stream is sealed chunk by chunk, not as one frame");
        }
        else
        {
            Assert.Contains("hello there", plaintext, StringComparison.Ordinal);
        }

        var sent = capture.ClientToServer();
        var received = capture.ServerToClient();
        Assert.Contains(result.Wire.AsSpan(0, 64).ToArray(), Windows(received, 64));
        foreach (var secret in new[] { Prompt, "hello there", "tok1", "chatcmpl-", "\"messages\"" })
        {
            Assert.DoesNotContain(Encoding.UTF8.GetBytes(secret), Windows(sent, secret.Length));
            Assert.DoesNotContain(Encoding.UTF8.GetBytes(secret), Windows(received, secret.Length));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Signature_and_receipt_cover_the_ciphertext_received_and_returned(bool stream)
    {
        var body = GatewayFixture.ChatBody("test-model", stream, Prompt);
        var result = await SendAsync(_node.Client, body);
        var id = ResponseId(Encoding.UTF8.GetString(result.Plaintext), stream);

        var expected = Hex(SHA256.HashData(result.RequestWire)) + ":" + Hex(SHA256.HashData(result.Wire));
        var (status, signature) = await _node.GetJsonAsync($"/v1/signature/{id}?signing_algo=ed25519");
        Assert.Equal(200, status);
        Assert.Equal(expected, signature.GetProperty("text").GetString());
        Assert.NotEqual(Hex(SHA256.HashData(body)) + ":" + Hex(SHA256.HashData(result.Plaintext)), expected);

        var (_, receipt) = await _node.GetJsonAsync($"/v1/receipt/{id}");
        var receiptText = receipt.GetRawText();
        Assert.Contains(Hex(SHA256.HashData(result.RequestWire)), receiptText, StringComparison.Ordinal);
        Assert.Contains(Hex(SHA256.HashData(result.Wire)), receiptText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Model_errors_are_sealed_under_the_response_nonce_like_answers(bool stream)
    {
        // SPEC §5.1/§5.2: once the request opened, the server encrypts error answers too; the status stays visible.
        var result = await SendAsync(_node.Client, GatewayFixture.ChatBody("fault-500", stream, Prompt));

        Assert.Equal(500, result.Status);
        Assert.NotNull(result.NonceHeader);
        Assert.True(result.Frames >= 1);
        Assert.Contains("boom in the model", Encoding.UTF8.GetString(result.Plaintext), StringComparison.Ordinal);
        Assert.DoesNotContain("boom", Encoding.UTF8.GetString(result.Wire), StringComparison.Ordinal);
        Assert.DoesNotContain(Prompt, Encoding.UTF8.GetString(result.Wire), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_relays_own_errors_after_the_key_was_accepted_are_sealed_too()
    {
        // A body over the relay's limit: the 413 comes from the relay, after the EHBP context exists (SPEC §5.1).
        var (_, small, _) = await _node.StartGatewayAsync(o => o.MaxRequestBodyBytes = 256);
        var result = await SendAsync(small, GatewayFixture.ChatBody("test-model", false, Prompt + new string('x', 1024)));

        Assert.Equal(413, result.Status);
        Assert.NotNull(result.NonceHeader);
        Assert.Contains("request_too_large", Encoding.UTF8.GetString(result.Plaintext), StringComparison.Ordinal);
        Assert.DoesNotContain("request_too_large", Encoding.UTF8.GetString(result.Wire), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ehbp_on_a_route_the_relay_does_not_serve_is_refused()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.TryAddWithoutValidation(EhbpProtocol.EncapsulatedKeyHeader, new string('a', 64));
        using var response = await _node.Client.SendAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(400, (int)response.StatusCode);
        Assert.False(response.Headers.Contains(EhbpProtocol.ResponseNonceHeader));
    }

    [Fact]
    public async Task Tampered_first_chunk_is_a_key_config_error_and_nothing_reaches_the_model()
    {
        var before = _node.Upstream.Received.Count;
        var result = await SendAsync(_node.Client, GatewayFixture.ChatBody("test-model", false, Prompt), editWire: w => w[10] ^= 1);

        Assert.Equal(422, result.Status);
        Assert.Null(result.NonceHeader);
        Assert.Equal(EhbpProtocol.ProblemMediaType, result.ContentType);
        using var problem = JsonDocument.Parse(result.Wire);
        Assert.Equal(EhbpProtocol.KeyConfigProblemType, problem.RootElement.GetProperty("type").GetString());
        Assert.Equal(before, _node.Upstream.Received.Count);
    }

    [Theory]
    [InlineData("tamper")]
    [InlineData("drop")]
    [InlineData("duplicate")]
    [InlineData("swap")]
    [InlineData("truncate")]
    public async Task A_damaged_later_request_chunk_is_400_and_nothing_reaches_the_model(string attack)
    {
        var before = _node.Upstream.Received.Count;
        var body = GatewayFixture.ChatBody("test-model", false, Prompt + new string('x', 40));
        var result = await SendAsync(_node.Client, body, chunkBytes: 16, editFrames: frames => attack switch
        {
            "tamper" => [frames[0], [.. frames[1][..^1], (byte)(frames[1][^1] ^ 1)], .. frames[2..]],
            "drop" => [frames[0], .. frames[2..]],
            "duplicate" => [frames[0], frames[1], frames[1], .. frames[2..]],
            "swap" => [frames[0], frames[2], frames[1], .. frames[3..]],
            _ => [.. frames[..^1], frames[^1][..^3]],
        });

        Assert.Equal(400, result.Status);
        Assert.Null(result.NonceHeader);
        Assert.DoesNotContain("urn:", Encoding.UTF8.GetString(result.Wire), StringComparison.Ordinal);
        Assert.Equal(before, _node.Upstream.Received.Count);
    }

    [Theory]
    [InlineData("not-hex", 400)]
    [InlineData("0000000000000000000000000000000000000000000000000000000000000000", 422)]
    public async Task Bad_encapsulated_keys_are_refused(string header, int expected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(new byte[40]) };
        request.Headers.TryAddWithoutValidation(EhbpProtocol.EncapsulatedKeyHeader, header);
        using var response = await _node.Client.SendAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(expected, (int)response.StatusCode);
        Assert.False(response.Headers.Contains(EhbpProtocol.ResponseNonceHeader));
    }

    [Fact]
    public async Task An_encapsulated_key_without_a_body_is_refused()
    {
        var result = await SendAsync(_node.Client, [], editFrames: _ => []);
        Assert.Equal(400, result.Status);
        Assert.Null(result.NonceHeader);
    }

    [Fact]
    public async Task A_request_encrypted_to_another_key_is_a_key_config_error()
    {
        using var rng = RandomNumberGenerator.Create();
        var (_, otherPk) = PrivateMl.E2ee.Hpke.X25519Kem.GenerateKeyPair(rng);
        var result = await SendAsync(_node.Client, GatewayFixture.ChatBody("test-model", false, Prompt), publicKey: otherPk);
        Assert.Equal(422, result.Status);
    }

    [Fact]
    public async Task Plaintext_requests_still_work_and_get_no_ehbp_headers()
    {
        var exchange = await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));
        Assert.Equal(200, exchange.Status);
        Assert.Contains("hello there", exchange.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Agent_derived_key_is_stable_across_gateway_restarts()
    {
        var (a, clientA, _) = await _node.StartGatewayAsync(o => o.KeySource = SigningKeySource.Agent);
        var (b, clientB, _) = await _node.StartGatewayAsync(o => o.KeySource = SigningKeySource.Agent);
        _ = (a, b);
        var keyA = await clientA.GetByteArrayAsync(EhbpProtocol.KeysPath, TestContext.Current.CancellationToken);
        var keyB = await clientB.GetByteArrayAsync(EhbpProtocol.KeysPath, TestContext.Current.CancellationToken);
        var random = await _node.Client.GetByteArrayAsync(EhbpProtocol.KeysPath, TestContext.Current.CancellationToken);

        Assert.Equal(keyA, keyB);
        Assert.NotEqual(keyA, random);
    }

    private async Task<KeysetKey> KeysetEntryAsync()
    {
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var (status, report) = await _node.GetJsonAsync($"/v1/attestation/report?format=aci&nonce={nonce}");
        Assert.Equal(200, status);
        var keyset = WorkloadKeyset.Parse(report.GetProperty("attestation").GetProperty("workload_keyset"));
        return Assert.Single(keyset.E2eePublicKeys, k => k.Algo == EhbpProtocol.KeysetAlgorithm);
    }

    private sealed record Result(int Status, string? NonceHeader, bool NotChunked, string? ContentType, byte[] RequestWire, byte[] Wire, byte[] Plaintext, int Frames);

    private static async Task<Result> SendAsync(
        HttpClient http, byte[] body, int chunkBytes = EhbpProtocol.DefaultPlaintextChunkBytes,
        Func<byte[][], byte[][]>? editFrames = null, Action<byte[]>? editWire = null, byte[]? publicKey = null)
    {
        publicKey ??= EhbpKeyConfig.ParseFirst(await http.GetByteArrayAsync(EhbpProtocol.KeysPath, TestContext.Current.CancellationToken)).PublicKey;
        using var exchange = EhbpClientExchange.Create(publicKey, RandomNumberGenerator.Create());
        var frames = body.Chunk(chunkBytes).Select(c => exchange.Request.SealFrame(c)).ToArray();
        frames = editFrames?.Invoke(frames) ?? frames;
        byte[] wire = [.. frames.SelectMany(f => f)];
        editWire?.Invoke(wire);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent(wire) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.TryAddWithoutValidation(EhbpProtocol.EncapsulatedKeyHeader, exchange.EncapsulatedKeyHeader);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var chunked = response.Headers.TransferEncodingChunked == true;
        var responseWire = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        var nonce = response.Headers.TryGetValues(EhbpProtocol.ResponseNonceHeader, out var values) ? values.Single() : null;
        var plaintext = Array.Empty<byte>();
        var count = 0;
        if (nonce is not null)
        {
            using var opener = exchange.OpenResponse(nonce);
            plaintext = EhbpFraming.OpenAll(responseWire, opener, 1 << 24);
            count = (int)opener.Sequence;
        }

        return new Result((int)response.StatusCode, nonce, !chunked,
            response.Content.Headers.ContentType?.MediaType, wire, responseWire, plaintext, count);
    }

    private static string ResponseId(string plaintext, bool stream)
    {
        var json = stream ? plaintext.Split('\n').First(l => l.StartsWith("data: {", StringComparison.Ordinal))["data: ".Length..] : plaintext;
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("id").GetString()!;
    }

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    private static IEnumerable<byte[]> Windows(byte[] data, int width) =>
        Enumerable.Range(0, Math.Max(0, data.Length - width + 1)).Select(i => data.AsSpan(i, width).ToArray());
}
