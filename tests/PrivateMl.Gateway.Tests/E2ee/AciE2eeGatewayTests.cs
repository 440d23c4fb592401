using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.E2ee.Aci;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.E2ee;

/// <summary>ACI E2EE v2 on the gateway over the real simulated agent and a real upstream on loopback.</summary>
public sealed class AciE2eeGatewayTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;
    private WorkloadKeyset _keyset = null!;

    public async ValueTask InitializeAsync()
    {
        _node = await GatewayFixture.StartAsync();
        var (_, report) = await _node.GetJsonAsync("/v1/attestation/report?format=aci");
        _keyset = WorkloadKeyset.Parse(report.GetProperty("attestation").GetProperty("workload_keyset"));
    }

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    private sealed record Sent(Exchange Exchange, AciExchangeContext Context, AciPrivateKey ClientKey, Dictionary<string, string> Headers);

    private async Task<Sent> SendAsync(string model, bool stream, AciSuite suite = AciSuite.X25519, Action<Dictionary<string, string>>? editHeaders = null, Func<byte[], byte[]>? editBody = null, string path = "/v1/chat/completions")
    {
        var request = AciTestRequest.Create(_keyset, suite, model, stream, "a secret about lemurs", path);
        var wire = editBody?.Invoke(request.Body) ?? request.Body;
        editHeaders?.Invoke(request.Headers);
        var exchange = await _node.PostAsync(path, wire, request.AddHeaders);
        return new Sent(exchange, request.Context, request.ClientKey, request.Headers);
    }

    private static string Code(Exchange e)
    {
        using var doc = JsonDocument.Parse(e.Body);
        return doc.RootElement.GetProperty("error").GetProperty("code").GetString()!;
    }

    [Theory]
    [InlineData("test-model", false, AciSuite.X25519)]
    [InlineData("test-model", true, AciSuite.X25519)]
    [InlineData("batched", true, AciSuite.Secp256k1)]
    [InlineData("split", true, AciSuite.X25519)]
    [InlineData("pretty", false, AciSuite.Secp256k1)]
    public async Task Answers_are_encrypted_per_field_and_per_chunk_and_signed_over_the_ciphertext(string model, bool stream, AciSuite suite)
    {
        var sent = await SendAsync(model, stream, suite);
        Assert.Equal(200, sent.Exchange.Status);
        var text = sent.Exchange.Text;
        Assert.DoesNotContain("tok1", text, StringComparison.Ordinal);
        Assert.DoesNotContain("hello there", text, StringComparison.Ordinal);

        // The model received the prompt restored; the answer decrypts chunk by chunk.
        var upstream = Encoding.UTF8.GetString(_node.Upstream.Received.Values.Last(v => Encoding.UTF8.GetString(v).Contains(model, StringComparison.Ordinal)));
        Assert.Contains("a secret about lemurs", upstream, StringComparison.Ordinal);
        var content = new StringBuilder();
        if (stream)
        {
            var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("data: [DONE]", events[^1]);
            foreach (var e in events[..^1])
            {
                var chunk = JsonNode.Parse(e["data: ".Length..])!.AsObject();
                AciPayload.DecryptResponse(chunk, AciPayload.ChatEndpoint, true, sent.Context, sent.ClientKey);
                content.Append(chunk["choices"]?[0]?["delta"]?["content"]?.GetValue<string>());
            }

            Assert.StartsWith("tok0 tok1 ", content.ToString(), StringComparison.Ordinal);
        }
        else
        {
            var json = JsonNode.Parse(sent.Exchange.Body)!.AsObject();
            AciPayload.DecryptResponse(json, AciPayload.ChatEndpoint, false, sent.Context, sent.ClientKey);
            Assert.Equal("hello there", json["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        }

        // The gateway's signature covers the exact ciphertext bytes it received and sent.
        var id = GatewayFixture.ResponseId(sent.Exchange);
        var (status, signature) = await _node.GetJsonAsync($"/v1/signature/{id}?signing_algo=ed25519");
        Assert.Equal(200, status);
        var wireRequest = _node.Upstream.Received.Count;
        Assert.True(wireRequest > 0);
        Assert.EndsWith(":" + Convert.ToHexStringLower(SHA256.HashData(sent.Exchange.Body)), signature.GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Completions_prompts_and_texts_are_encrypted_too()
    {
        var sent = await SendAsync("test-model", false, path: "/v1/completions");
        Assert.Equal(200, sent.Exchange.Status);
        var json = JsonNode.Parse(sent.Exchange.Body)!.AsObject();
        Assert.DoesNotContain("hello there", sent.Exchange.Text, StringComparison.Ordinal);
        AciPayload.DecryptResponse(json, AciPayload.CompletionsEndpoint, false, sent.Context, sent.ClientKey);
        Assert.Equal("hello there", json["choices"]![0]!["text"]!.GetValue<string>());
    }

    public static TheoryData<string, string?, string> HeaderFaults => new()
    {
        { AciHeaders.Version, "1", "e2ee_invalid_version" },
        { AciHeaders.LegacySigningAlgo, "ed25519", "e2ee_invalid_version" },
        { AciHeaders.Nonce, null, "e2ee_header_missing" },
        { AciHeaders.Nonce, "xyz", "e2ee_invalid_nonce" },
        { AciHeaders.Timestamp, "1000", "e2ee_invalid_timestamp" },
        { AciHeaders.ModelPublicKey, new string('7', 64), "e2ee_model_key_mismatch" },
        { AciHeaders.ClientPublicKey, "00", "e2ee_invalid_public_key" },
        { "Ehbp-Encapsulated-Key", "00", "e2ee_invalid_version" },
    };

    [Theory]
    [MemberData(nameof(HeaderFaults))]
    public async Task Malformed_e2ee_requests_get_their_code_and_never_reach_the_model_in_any_form(string header, string? value, string code)
    {
        var before = _node.Upstream.Received.Count;
        var sent = await SendAsync("test-model", false, editHeaders: h =>
        {
            if (value is null)
            {
                h.Remove(header);
            }
            else
            {
                h[header] = value;
            }
        });
        Assert.Equal(400, sent.Exchange.Status);
        Assert.Equal(code, Code(sent.Exchange));
        Assert.Equal(before, _node.Upstream.Received.Count);
    }

    [Fact]
    public async Task Body_faults_are_typed_and_forward_nothing()
    {
        var before = _node.Upstream.Received.Count;
        var noModel = await SendAsync("test-model", false, editBody: b => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(b).Replace("\"model\":\"test-model\"", "\"model\":7", StringComparison.Ordinal)));
        Assert.Equal("e2ee_invalid_payload_model", Code(noModel.Exchange));
        var otherModel = await SendAsync("test-model", false, editBody: b => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(b).Replace("\"model\":\"test-model\"", "\"model\":\"pretty\"", StringComparison.Ordinal)));
        Assert.Equal("e2ee_decryption_failed", Code(otherModel.Exchange));
        Assert.Equal(before, _node.Upstream.Received.Count);
    }

    [Fact]
    public async Task E2ee_headers_on_other_endpoints_are_unsupported_not_ignored()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Add(AciHeaders.Version, "2");
        using var response = await _node.Client.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("e2ee_unsupported_endpoint", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_response_names_the_aci_version_and_keyset_and_plaintext_stays_unmarked()
    {
        var plain = await _node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));
        Assert.Equal(200, plain.Status);
        using var response = await _node.Client.GetAsync("/health", TestContext.Current.CancellationToken);
        Assert.Equal("aci/1", response.Headers.GetValues(AciHeaders.AciVersion).Single());
        Assert.Equal(_keyset.Digest, response.Headers.GetValues(AciHeaders.KeysetDigest).Single());
        Assert.False(response.Headers.Contains(AciHeaders.Applied));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_model_error_keeps_its_status_and_type_but_not_its_text_and_claims_no_e2ee(bool stream)
    {
        // The fake model answers 500 {"message":"boom in the model","type":"InternalServerError"}: ACI v2 has no encrypted
        // error, so the gateway relays a typed error and withholds the model's words (which could quote the prompt).
        var sent = await SendAsync("fault-500", stream);

        Assert.Equal(500, sent.Exchange.Status);
        Assert.Equal("e2ee_model_error", Code(sent.Exchange));
        Assert.Equal(AciE2eeError.ModelError, AciE2eeErrors.FromCode(Code(sent.Exchange)));
        using var doc = JsonDocument.Parse(sent.Exchange.Body);
        Assert.Equal("InternalServerError", doc.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain("boom", sent.Exchange.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("lemurs", sent.Exchange.Text, StringComparison.Ordinal);
        Assert.Null(sent.Exchange.ReceiptId);
    }

    [Fact]
    public void A_model_error_type_that_is_not_a_plain_identifier_is_replaced()
    {
        var body = AciE2eeMiddleware.ModelErrorBody(400, "{\"error\":{\"message\":\"your prompt 'lemurs' is too long\",\"type\":\"lemurs are secret\"}}"u8);
        using var doc = JsonDocument.Parse(body);
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("e2ee_model_error", error.GetProperty("code").GetString());
        Assert.DoesNotContain("lemurs", Encoding.UTF8.GetString(body), StringComparison.Ordinal);
        Assert.Equal("upstream_error", JsonDocument.Parse(AciE2eeMiddleware.ModelErrorBody(502, "not json"u8)).RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}
