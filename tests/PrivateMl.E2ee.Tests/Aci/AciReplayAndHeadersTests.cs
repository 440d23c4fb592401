using System.Globalization;
using System.Text;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.E2ee.Tests.Aci;

public sealed class AciReplayAndHeadersTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_750_000_000);

    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void A_triple_is_accepted_once_and_nonce_case_does_not_matter()
    {
        var cache = new AciReplayCache(new Clock(Now));
        var nonce = new string('a', 64);
        Assert.True(cache.TryClaim([1], [2], nonce, Now.ToUnixTimeSeconds(), out _));
        Assert.False(cache.TryClaim([1], [2], nonce.ToUpperInvariant(), Now.ToUnixTimeSeconds(), out var full));
        Assert.False(full);
        Assert.True(cache.TryClaim([3], [2], nonce, Now.ToUnixTimeSeconds(), out _));
        Assert.True(cache.TryClaim([1], [4], nonce, Now.ToUnixTimeSeconds(), out _));
    }

    [Fact]
    public void W6_a_future_timestamp_cannot_be_replayed_after_first_seen_plus_300s()
    {
        // Reference behaviour (research W6): entry kept first-seen + 300 s, but a ts 300 s ahead stays acceptable for 600 s.
        var clock = new Clock(Now);
        var cache = new AciReplayCache(clock);
        var nonce = new string('b', 64);
        var ts = Now.ToUnixTimeSeconds() + 300;
        Assert.True(cache.TryClaim([1], [2], nonce, ts, out _));
        clock.Now = Now + TimeSpan.FromSeconds(450);
        var headers = Headers(ts);
        AciRequestHeaders.Validate(headers, KeysetWith(out _), clock.Now);   // still inside the window …
        Assert.False(cache.TryClaim([1], [2], nonce, ts, out _));             // … and still refused as a replay
        clock.Now = Now + TimeSpan.FromSeconds(601);
        Assert.Equal(AciE2eeError.InvalidTimestamp, Assert.Throws<AciE2eeException>(() => AciRequestHeaders.Validate(headers, KeysetWith(out _), clock.Now)).Error);
    }

    [Fact]
    public void A_full_store_refuses_instead_of_forgetting_live_entries()
    {
        var clock = new Clock(Now);
        var cache = new AciReplayCache(clock, capacity: 2);
        Assert.True(cache.TryClaim([1], [0], new string('1', 64), Now.ToUnixTimeSeconds(), out _));
        Assert.True(cache.TryClaim([2], [0], new string('1', 64), Now.ToUnixTimeSeconds(), out _));
        Assert.False(cache.TryClaim([3], [0], new string('1', 64), Now.ToUnixTimeSeconds(), out var full));
        Assert.True(full);
        Assert.False(cache.TryClaim([1], [0], new string('1', 64), Now.ToUnixTimeSeconds(), out full));
        Assert.False(full);
        clock.Now = Now + TimeSpan.FromSeconds(302);
        Assert.True(cache.TryClaim([3], [0], new string('1', 64), clock.Now.ToUnixTimeSeconds(), out _));
        Assert.Equal(1, cache.Count);
    }

    public static TheoryData<string, string?, AciE2eeError> BadHeaders => new()
    {
        { AciHeaders.Version, "1", AciE2eeError.InvalidVersion },
        { AciHeaders.Version, "3", AciE2eeError.InvalidVersion },
        { AciHeaders.LegacySigningAlgo, "ecdsa", AciE2eeError.InvalidVersion },
        { AciHeaders.Version, null, AciE2eeError.HeaderMissing },
        { AciHeaders.Nonce, null, AciE2eeError.HeaderMissing },
        { AciHeaders.ClientPublicKey, null, AciE2eeError.HeaderMissing },
        { AciHeaders.Nonce, "0x" + new string('a', 62), AciE2eeError.InvalidNonce },
        { AciHeaders.Nonce, new string('a', 63), AciE2eeError.InvalidNonce },
        { AciHeaders.Timestamp, "soon", AciE2eeError.InvalidTimestamp },
        { AciHeaders.Timestamp, "-5", AciE2eeError.InvalidTimestamp },
        { AciHeaders.Timestamp, "1749999699", AciE2eeError.InvalidTimestamp },
        { AciHeaders.Timestamp, "1750000301", AciE2eeError.InvalidTimestamp },
        { AciHeaders.ModelPublicKey, new string('1', 64), AciE2eeError.ModelKeyMismatch },
        { AciHeaders.ClientPublicKey, "zz", AciE2eeError.InvalidPublicKey },
        { AciHeaders.ClientPublicKey, "04" + new string('1', 128), AciE2eeError.InvalidPublicKey },
    };

    [Theory]
    [MemberData(nameof(BadHeaders))]
    public void Each_header_fault_has_its_spec_code(string header, string? value, AciE2eeError expected)
    {
        var keyset = KeysetWith(out var service);
        var values = new Dictionary<string, string>(Values(Now.ToUnixTimeSeconds(), service.PublicKeyHex), StringComparer.OrdinalIgnoreCase);
        if (value is null)
        {
            values.Remove(header);
        }
        else
        {
            values[header] = value;
        }

        var e = Assert.Throws<AciE2eeException>(() => AciRequestHeaders.Validate(n => values.GetValueOrDefault(n), keyset, Now));
        Assert.Equal(expected, e.Error);
        Assert.StartsWith("e2ee_", e.Code, StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_headers_select_the_suite_of_the_matching_keyset_key()
    {
        var keyset = KeysetWith(out var service);
        var values = Values(Now.ToUnixTimeSeconds(), "0x" + service.PublicKeyHex.ToUpperInvariant());
        var h = AciRequestHeaders.Validate(n => values.GetValueOrDefault(n), keyset, Now);
        Assert.Equal(AciSuite.X25519, h.Suite);
        Assert.Equal(values[AciHeaders.Nonce], h.Nonce);
    }

    [Theory]
    [InlineData(AciPayload.ChatEndpoint, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}}]},{\"role\":\"assistant\",\"content\":null}],\"temperature\":0.5}", 3)]
    [InlineData(AciPayload.CompletionsEndpoint, "{\"model\":\"m\",\"prompt\":[\"a\",[1,2],\"b\"]}", 2)]
    [InlineData(AciPayload.CompletionsEndpoint, "{\"model\":\"m\",\"prompt\":\"once upon\"}", 1)]
    public void Request_bodies_round_trip_and_restore_in_order(string endpoint, string json, int fields)
    {
        using var service = AciPrivateKey.Create(AciSuite.Secp256k1);
        var context = new AciExchangeContext(AciSuite.Secp256k1, "m", new string('c', 64), Now.ToUnixTimeSeconds());
        var body = AciPayload.ParseBody(Encoding.UTF8.GetBytes(json), out _)!;
        Assert.Equal(fields, AciPayload.EncryptRequest(body, endpoint, context, service.PublicKey));
        var wire = Encoding.UTF8.GetString(AciPayload.Serialize(body));
        Assert.DoesNotContain("be brief", wire, StringComparison.Ordinal);
        Assert.DoesNotContain("once upon", wire, StringComparison.Ordinal);
        var received = AciPayload.ParseBody(Encoding.UTF8.GetBytes(wire), out _)!;
        Assert.Equal(fields, AciPayload.DecryptRequest(received, endpoint, context, service));
        Assert.Equal(json, Encoding.UTF8.GetString(AciPayload.Serialize(received)));
    }

    [Fact]
    public void Whole_content_plaintext_that_is_a_json_array_is_restored_as_structured_content()
    {
        using var service = AciPrivateKey.Create(AciSuite.X25519);
        var context = new AciExchangeContext(AciSuite.X25519, "m", new string('c', 64), 1);
        var structured = "[{\"type\":\"text\",\"text\":\"hi\"}]";
        var field = AciFieldCipher.Seal(AciSuite.X25519, service.PublicKey, Encoding.UTF8.GetBytes(structured), AciAad.Request(context.Algo, "m", "messages.0.content", context.Nonce, 1));
        var body = AciPayload.ParseBody(Encoding.UTF8.GetBytes($"{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{field}\"}}]}}"), out _)!;
        AciPayload.DecryptRequest(body, AciPayload.ChatEndpoint, context, service);
        Assert.Equal("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":" + structured + "}]}", Encoding.UTF8.GetString(AciPayload.Serialize(body)));
    }

    [Fact]
    public void W15_a_body_without_any_encrypted_field_is_refused()
    {
        using var service = AciPrivateKey.Create(AciSuite.X25519);
        var context = new AciExchangeContext(AciSuite.X25519, "m", new string('c', 64), 1);
        var body = AciPayload.ParseBody("{\"model\":\"m\",\"messages\":[]}"u8, out _)!;
        Assert.Equal(AciE2eeError.DecryptionFailed, Assert.Throws<AciE2eeException>(() => AciPayload.DecryptRequest(body, AciPayload.ChatEndpoint, context, service)).Error);
        body = AciPayload.ParseBody("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"plain\"}]}"u8, out _)!;
        Assert.Equal(AciE2eeError.DecryptionFailed, Assert.Throws<AciE2eeException>(() => AciPayload.DecryptRequest(body, AciPayload.ChatEndpoint, context, service)).Error);
    }

    [Fact]
    public void Response_choices_use_their_index_member_in_the_path()
    {
        using var client = AciPrivateKey.Create(AciSuite.X25519);
        var context = new AciExchangeContext(AciSuite.X25519, "m", new string('c', 64), 1);
        var body = AciPayload.ParseBody("{\"model\":\"m\",\"id\":\"c1\",\"choices\":[{\"index\":3,\"message\":{\"content\":\"x\",\"reasoning_content\":\"why\"}}]}"u8, out _)!;
        Assert.Equal(2, AciPayload.EncryptResponse(body, AciPayload.ChatEndpoint, false, context, client.PublicKey));
        var field = body["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.Equal("x", Encoding.UTF8.GetString(AciFieldCipher.Open(client, field, AciAad.Response(context.Algo, "m", "c1", "choices.3.message.content", context.Nonce, 1))));
        Assert.Equal(2, AciPayload.DecryptResponse(body, AciPayload.ChatEndpoint, false, context, client));
        Assert.Equal("why", body["choices"]![0]!["message"]!["reasoning_content"]!.GetValue<string>());
    }

    [Fact]
    public void Sse_events_split_across_reads_are_reassembled_and_done_passes_through()
    {
        var seen = new List<string?>();
        var splitter = new AciSseSplitter((lines, data, output) =>
        {
            seen.Add(data);
            AciSseSplitter.WriteEvent(output, lines, data);
        });
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        var stream = "data: {\"a\":1}\r\n\r\n: comment\ndata:{\"b\":\ndata: 2}\n\ndata: [DONE]\n\n"u8.ToArray();
        foreach (var b in stream)
        {
            splitter.Feed([b], output);
        }

        splitter.Complete(output);
        Assert.Equal(["{\"a\":1}", "{\"b\":\n2}", "[DONE]"], seen);
        Assert.Equal("data: {\"a\":1}\n\n: comment\ndata: {\"b\":\ndata: 2}\n\ndata: [DONE]\n\n", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    private static WorkloadKeyset KeysetWith(out AciPrivateKey service)
    {
        service = AciPrivateKey.FromSecret(AciSuite.X25519, Enumerable.Repeat((byte)3, 32).ToArray());
        using var secp = AciPrivateKey.FromSecret(AciSuite.Secp256k1, Enumerable.Repeat((byte)0x44, 32).ToArray());
        return new WorkloadKeyset(null, Now.ToUnixTimeSeconds() + 86400, [new KeysetKey("r", "ed25519", new string('0', 64))],
            [new KeysetKey("e", WorkloadKeyset.X25519Suite, service.PublicKeyHex), new KeysetKey("k", WorkloadKeyset.Secp256k1Suite, secp.PublicKeyHex)], []);
    }

    private static Dictionary<string, string> Values(long ts, string model)
    {
        using var client = AciPrivateKey.FromSecret(AciSuite.X25519, Enumerable.Repeat((byte)5, 32).ToArray());
        return new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            [AciHeaders.Version] = "2",
            [AciHeaders.ClientPublicKey] = client.PublicKeyHex,
            [AciHeaders.ModelPublicKey] = model,
            [AciHeaders.Nonce] = "000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f",
            [AciHeaders.Timestamp] = ts.ToString(CultureInfo.InvariantCulture),
        };
    }

    private static Func<string, string?> Headers(long ts)
    {
        KeysetWith(out var service);
        var values = Values(ts, service.PublicKeyHex);
        return n => values.GetValueOrDefault(n);
    }
}
