using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client.E2ee.Aci;
using PrivateMl.Client.Tests.Support;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.Client.Tests.E2ee.Aci;

/// <summary>ACI E2EE v2 between our client and our gateway (simulated node), with a man in the middle on loopback.</summary>
public sealed class AciE2eeChatTests
{
    private const string Prompt = "my secret prompt about zebras";
    private static readonly string[] AnswerWords = ["tok0", "tok1", "tok3", "hello there"];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<NodeVerificationResult> AttestAsync(GatewayNode node, HttpClient http)
    {
        var result = await new NodeVerifier(http, node.AciOptions()).VerifyAsync(node.BaseAddress, Ct);
        Assert.True(result.Trusted, NodeVerifierTests.Describe(result));
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.KeysetBinding)!.Outcome);
        Assert.NotNull(result.Keyset);
        return result;
    }

    [Theory]
    [InlineData(true, AciSuite.X25519)]
    [InlineData(false, AciSuite.X25519)]
    [InlineData(true, AciSuite.Secp256k1)]
    [InlineData(false, AciSuite.Secp256k1)]
    public async Task Chat_round_trips_and_the_link_carries_no_plaintext(bool stream, AciSuite suite)
    {
        await using var node = await GatewayNode.StartAsync();
        var mitm = new AciMitm();
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);
        var deltas = new List<string>();

        var answer = await new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, stream), suite: suite, onDelta: deltas.Add, cancellationToken: Ct);

        Assert.Equal(stream ? "tok0 tok1 tok2 tok3 " : "hello there", answer.Content);
        Assert.Equal(answer.Content, string.Concat(deltas));
        Assert.Equal(suite.Algo(), answer.Algo);
        Assert.All(answer.Checks, c => Assert.Equal(CheckOutcome.Passed, c.Outcome));

        // The model got the prompt in clear; the link between client and gateway never carried it or the answer.
        Assert.Contains(Prompt, Encoding.UTF8.GetString(node.UpstreamReceived.Last()), StringComparison.Ordinal);
        var capture = mitm.Capture();
        Assert.DoesNotContain("zebras", capture, StringComparison.Ordinal);
        Assert.All(AnswerWords, w => Assert.DoesNotContain(w, capture, StringComparison.Ordinal));
        Assert.Contains("\"model\":\"test-model\"", capture, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_model_error_is_a_typed_model_error_and_its_words_stay_off_the_link(bool stream)
    {
        await using var node = await GatewayNode.StartAsync();
        var mitm = new AciMitm();
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);

        var e = await Assert.ThrowsAsync<AciE2eeException>(() => new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(attested, VerifiedChat.RequestBody("fault-echo", Prompt, stream), cancellationToken: Ct));

        Assert.Equal(AciE2eeError.ModelError, e.Error);
        Assert.Contains("HTTP 400", e.Message, StringComparison.Ordinal);
        Assert.Contains(Prompt, Encoding.UTF8.GetString(node.UpstreamReceived.Last()), StringComparison.Ordinal);
        Assert.DoesNotContain("zebras", mitm.Capture(), StringComparison.Ordinal); // the model quoted it; the gateway did not relay that
    }

    [Fact]
    public async Task A_replayed_request_is_refused_and_never_reaches_the_model()
    {
        await using var node = await GatewayNode.StartAsync();
        var mitm = new AciMitm();
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);
        await new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token).SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, false), cancellationToken: Ct);
        var (original, body) = mitm.Requests.Last();
        var forwarded = node.UpstreamReceived.Count;

        using var replay = new HttpRequestMessage(HttpMethod.Post, original.RequestUri) { Content = new ByteArrayContent(body) };
        replay.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        foreach (var h in original.Headers)
        {
            replay.Headers.TryAddWithoutValidation(h.Key, h.Value);
        }

        using var plain = new HttpClient();
        using var response = await plain.SendAsync(replay, Ct);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("e2ee_replay_detected", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(forwarded, node.UpstreamReceived.Count);
    }

    [Theory]
    [InlineData(-301, AciE2eeError.InvalidTimestamp)]
    [InlineData(301, AciE2eeError.InvalidTimestamp)]
    [InlineData(-290, null)]
    public async Task Timestamps_outside_the_window_are_refused(int shiftSeconds, AciE2eeError? expected)
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var attested = await AttestAsync(node, http);
        var chat = new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token, new ShiftedTime(TimeSpan.FromSeconds(shiftSeconds)));
        var forwarded = node.UpstreamReceived.Count;
        if (expected is null)
        {
            Assert.Equal("hello there", (await chat.SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, false), cancellationToken: Ct)).Content);
            return;
        }

        var e = await Assert.ThrowsAsync<AciE2eeException>(() => chat.SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, false), cancellationToken: Ct));
        Assert.Equal(expected, e.Error);
        Assert.Equal(forwarded, node.UpstreamReceived.Count);
    }

    public static TheoryData<string> RequestRewrites => ["model", "path", "swap-messages", "plaintext-field"];

    [Theory]
    [MemberData(nameof(RequestRewrites))]
    public async Task A_field_moved_to_another_path_or_model_fails_to_decrypt(string rewrite)
    {
        await using var node = await GatewayNode.StartAsync();
        var mitm = new AciMitm
        {
            RewriteRequest = (_, body) =>
            {
                var json = JsonNode.Parse(body)!.AsObject();
                var messages = json["messages"]!.AsArray();
                var content = messages[0]!["content"]!.GetValue<string>();
                switch (rewrite)
                {
                    case "model":
                        json["model"] = "other-model";
                        break;
                    case "path":
                        messages.Insert(0, new JsonObject { ["role"] = "system", ["content"] = content });
                        messages[1]!["content"] = content;
                        break;
                    case "swap-messages":
                        messages.Add(new JsonObject { ["role"] = "user", ["content"] = content });
                        messages[0]!["content"] = content;
                        break;
                    default:
                        messages.Add(new JsonObject { ["role"] = "user", ["content"] = "injected plaintext" });
                        break;
                }

                return Encoding.UTF8.GetBytes(json.ToJsonString());
            },
        };
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);
        var forwarded = node.UpstreamReceived.Count;

        var e = await Assert.ThrowsAsync<AciE2eeException>(() => new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, false), cancellationToken: Ct));
        Assert.Equal(AciE2eeError.DecryptionFailed, e.Error);
        Assert.Equal(forwarded, node.UpstreamReceived.Count);
    }

    public static TheoryData<string> StreamTampering => ["drop", "reorder", "duplicate", "truncate-before-done", "truncate-keep-done"];

    [Theory]
    [MemberData(nameof(StreamTampering))]
    public async Task Stream_tampering_is_caught_by_the_signature_over_the_exact_bytes(string attack)
    {
        await using var node = await GatewayNode.StartAsync();
        var mitm = new AciMitm
        {
            RewriteResponse = (_, body) =>
            {
                var events = AciMitm.Events(body);
                Assert.Equal(5, events.Count);
                switch (attack)
                {
                    case "drop": events.RemoveAt(1); break;
                    case "reorder": (events[1], events[2]) = (events[2], events[1]); break;
                    case "duplicate": events.Insert(2, events[1]); break;
                    case "truncate-before-done": events.RemoveRange(3, 2); break;
                    default: events.RemoveAt(3); break;
                }

                return AciMitm.Join(events);
            },
        };
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);
        var deltas = new List<string>();

        var e = await Assert.ThrowsAsync<AciE2eeException>(() => new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, true), onDelta: deltas.Add, cancellationToken: Ct));
        Assert.Equal(AciE2eeError.StreamIntegrity, e.Error);
        Assert.Contains(attack.StartsWith("truncate-before", StringComparison.Ordinal) ? "truncated" : "signature over the exact bytes", e.Message, StringComparison.Ordinal);
        Assert.Empty(deltas);
    }

    [Fact]
    public async Task A_swapped_client_key_is_caught_even_when_the_relay_re_encrypts_the_answer()
    {
        await using var node = await GatewayNode.StartAsync();
        using var attacker = AciPrivateKey.Create(AciSuite.X25519);
        string? realClientKey = null;
        string? nonce = null;
        long ts = 0;
        var mitm = new AciMitm
        {
            RewriteRequest = (request, body) =>
            {
                realClientKey = request.Headers.GetValues(AciHeaders.ClientPublicKey).Single();
                nonce = request.Headers.GetValues(AciHeaders.Nonce).Single();
                ts = long.Parse(request.Headers.GetValues(AciHeaders.Timestamp).Single(), CultureInfo.InvariantCulture);
                request.Headers.Remove(AciHeaders.ClientPublicKey);
                request.Headers.Add(AciHeaders.ClientPublicKey, attacker.PublicKeyHex);
                return body;
            },
            RewriteResponse = (_, body) =>
            {
                // The attacker reads the answer with its key, then re-encrypts it to the real client with a valid AAD.
                var json = JsonNode.Parse(body)!.AsObject();
                var context = new AciExchangeContext(AciSuite.X25519, "test-model", nonce!, ts);
                AciPayload.DecryptResponse(json, AciPayload.ChatEndpoint, false, context, attacker);
                Assert.Equal("hello there", json["choices"]![0]!["message"]!["content"]!.GetValue<string>());
                AciPayload.EncryptResponse(json, AciPayload.ChatEndpoint, false, context, Convert.FromHexString(realClientKey!));
                return AciPayload.Serialize(json);
            },
        };
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);
        var deltas = new List<string>();

        var e = await Assert.ThrowsAsync<AciE2eeException>(() => new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, false), onDelta: deltas.Add, cancellationToken: Ct));
        Assert.Equal(AciE2eeError.StreamIntegrity, e.Error);
        Assert.Empty(deltas);
    }

    public static TheoryData<string, AciE2eeError> Downgrades => new()
    {
        { "strip-request-headers", AciE2eeError.ResponseNotEncrypted },
        { "version-1", AciE2eeError.InvalidVersion },
        { "legacy-signing-algo", AciE2eeError.InvalidVersion },
        { "response-other-suite", AciE2eeError.Downgrade },
        { "response-headers-stripped", AciE2eeError.ResponseNotEncrypted },
        { "response-plaintext-content", AciE2eeError.ResponseNotEncrypted },
    };

    [Theory]
    [MemberData(nameof(Downgrades))]
    public async Task Downgrades_are_refused(string attack, AciE2eeError expected)
    {
        await using var node = await GatewayNode.StartAsync();
        var mitm = new AciMitm
        {
            RewriteRequest = (request, body) =>
            {
                switch (attack)
                {
                    case "strip-request-headers":
                        foreach (var name in AciHeaders.Signals)
                        {
                            request.Headers.Remove(name);
                        }

                        break;
                    case "version-1":
                        request.Headers.Remove(AciHeaders.Version);
                        request.Headers.Add(AciHeaders.Version, "1");
                        break;
                    case "legacy-signing-algo":
                        request.Headers.Add(AciHeaders.LegacySigningAlgo, "ecdsa");
                        break;
                }

                return body;
            },
            RewriteResponse = (response, body) =>
            {
                switch (attack)
                {
                    case "response-other-suite":
                        response.Headers.Remove(AciHeaders.Algo);
                        response.Headers.Add(AciHeaders.Algo, WorkloadKeyset.Secp256k1Suite);
                        break;
                    case "response-headers-stripped":
                        response.Headers.Remove(AciHeaders.Applied);
                        break;
                    case "response-plaintext-content":
                        var json = JsonNode.Parse(body)!.AsObject();
                        json["choices"]![0]!["message"]!["content"] = "trust me, plaintext";
                        return AciPayload.Serialize(json);
                }

                return body;
            },
        };
        using var http = new HttpClient(mitm);
        var attested = await AttestAsync(node, http);
        var deltas = new List<string>();

        var e = await Assert.ThrowsAsync<AciE2eeException>(() => new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(attested, VerifiedChat.RequestBody("test-model", Prompt, false), onDelta: deltas.Add, cancellationToken: Ct));
        Assert.Equal(expected, e.Error);
        Assert.Empty(deltas);

        // A request-side downgrade never gets the prompt to the model in clear (stripped headers forward ciphertext only).
        if (!attack.StartsWith("response", StringComparison.Ordinal))
        {
            Assert.All(node.UpstreamReceived, b => Assert.DoesNotContain("zebras", Encoding.UTF8.GetString(b), StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Only_keys_of_the_keyset_attested_in_this_run_are_used()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var chat = new AciE2eeChat(http, node.BaseAddress, GatewayNode.Token);
        var body = VerifiedChat.RequestBody("test-model", Prompt, false);

        // A seed-format verification attests no keyset: nothing is encrypted.
        var seed = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, Ct);
        Assert.True(seed.Trusted);
        Assert.Equal(AciE2eeError.NodeNotTrusted, (await Assert.ThrowsAsync<AciE2eeException>(() => chat.SendAsync(seed, body, cancellationToken: Ct))).Error);

        // A keyset without the asked suite.
        var attested = await AttestAsync(node, http);
        var onlyX = new WorkloadKeyset(attested.Keyset!.Subject, attested.Keyset.NotAfter, attested.Keyset.ReceiptSigningKeys, attested.Keyset.E2eePublicKeys.Where(k => k.Algo == WorkloadKeyset.X25519Suite).ToList(), []);
        var e = await Assert.ThrowsAsync<AciE2eeException>(() => chat.SendAsync(attested with { Keyset = onlyX }, body, suite: AciSuite.Secp256k1, cancellationToken: Ct));
        Assert.Equal(AciE2eeError.KeyNotAttested, e.Error);

        // A key that is not in the gateway's keyset: the gateway refuses it.
        using var stranger = AciPrivateKey.Create(AciSuite.X25519);
        var forged = new WorkloadKeyset(null, attested.Keyset.NotAfter, attested.Keyset.ReceiptSigningKeys, [new KeysetKey("x", WorkloadKeyset.X25519Suite, stranger.PublicKeyHex)], []);
        e = await Assert.ThrowsAsync<AciE2eeException>(() => chat.SendAsync(attested with { Keyset = forged }, body, cancellationToken: Ct));
        Assert.Equal(AciE2eeError.ModelKeyMismatch, e.Error);
    }
}
