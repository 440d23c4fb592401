using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.E2ee.Hpke;
using PrivateMl.Testing;

namespace PrivateMl.E2ee.Tests.Ehbp;

/// <summary>
/// EHBP session recovery tokens (SPEC §6): the token taken after sealing a request decrypts the response without the
/// exchange, from its JSON form, from the first frame on every replay; malformed tokens are a typed error.
/// </summary>
public sealed class EhbpRecoveryTokenTests
{
    private static readonly RandomNumberGenerator Random = RandomNumberGenerator.Create();

    [Fact]
    public void The_published_json_shape_round_trips()
    {
        var published = JsonDocument.Parse(SharedTestData.ReadText("e2ee/ehbp-tinfoil.json")).RootElement.GetProperty("vectors").EnumerateArray()
            .Single(v => v.GetProperty("name").GetString() == "session_recovery_token_json_shape").GetProperty("published");

        using var token = EhbpRecoveryToken.Parse(published.GetRawText());

        Assert.Equal(published.GetProperty("requestEnc").GetString(), Convert.ToHexStringLower(token.RequestEnc));
        using var json = JsonDocument.Parse(token.ToJson());
        Assert.Equal(
            published.EnumerateObject().Select(p => (p.Name, p.Value.GetString())).Order(),
            json.RootElement.EnumerateObject().Select(p => (p.Name, p.Value.GetString())).Order());
    }

    [Fact]
    public async Task A_token_from_json_decrypts_the_response_after_the_exchange_is_gone()
    {
        var (skR, pkR) = X25519Kem.GenerateKeyPair(Random);
        var request = RandomNumberGenerator.GetBytes(20_000);
        var answer = RandomNumberGenerator.GetBytes(150_000);

        string stored;
        string encHeader;
        byte[] requestWire;
        using (var client = EhbpClientExchange.Create(pkR, Random))
        {
            requestWire = client.SealBody(request);
            encHeader = client.EncapsulatedKeyHeader;
            using var token = client.ExportRecoveryToken();
            Assert.Equal(client.EncapsulatedKey, token.RequestEnc.ToArray());
            stored = token.ToJson();
        }

        var (nonceHeader, responseWire) = Serve(skR, encHeader, requestWire, request, answer);

        using var recovered = EhbpRecoveryToken.Parse(stored);
        Assert.Equal(answer, await DecryptAsync(recovered, nonceHeader, responseWire));
    }

    [Fact]
    public async Task The_token_and_the_live_exchange_open_the_same_response()
    {
        var (skR, pkR) = X25519Kem.GenerateKeyPair(Random);
        var answer = Encoding.UTF8.GetBytes("data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        using var client = EhbpClientExchange.Create(pkR, Random);
        var requestWire = client.SealBody("{}"u8);
        using var token = client.ExportRecoveryToken();
        var (nonceHeader, responseWire) = Serve(skR, client.EncapsulatedKeyHeader, requestWire, "{}"u8.ToArray(), answer);

        using var live = client.OpenResponse(nonceHeader);
        Assert.Equal(answer, EhbpFraming.OpenAll(responseWire, live, 1 << 20));
        Assert.Equal(answer, await DecryptAsync(token, nonceHeader, responseWire));
    }

    [Fact]
    public async Task A_replay_is_opened_from_the_first_frame_again_and_a_tail_alone_does_not_authenticate()
    {
        var (skR, pkR) = X25519Kem.GenerateKeyPair(Random);
        var answer = RandomNumberGenerator.GetBytes(3 * 1000);
        using var client = EhbpClientExchange.Create(pkR, Random);
        var requestWire = client.SealBody("{}"u8);
        using var token = client.ExportRecoveryToken();
        var (nonceHeader, responseWire) = Serve(skR, client.EncapsulatedKeyHeader, requestWire, "{}"u8.ToArray(), answer, chunkBytes: 1000);
        var frame = 4 + 1000 + 16;
        Assert.Equal(3 * frame, responseWire.Length);

        // The first connection broke after one frame: one frame's plaintext, authenticated, then a truncation error.
        var partial = new EhbpDecryptingStream(new MemoryStream(responseWire[..(frame + 10)]), token.OpenResponse(nonceHeader), 1 << 20);
        var first = new byte[1000];
        await partial.ReadExactlyAsync(first, TestContext.Current.CancellationToken);
        Assert.Equal(answer[..1000], first);
        var truncated = await Assert.ThrowsAsync<AttestationException>(() => partial.ReadAsync(new byte[10], TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ErrorCode.EhbpFrameTruncated, truncated.Code);

        // The server replays from the first frame: a fresh cipher from the same token and nonce opens all of it.
        Assert.Equal(answer, await DecryptAsync(token, nonceHeader, responseWire));

        // Resuming at a frame boundary is not EHBP: the second frame does not open under counter 0 (the cipher names it a
        // later frame) and nothing of it is released.
        var tail = new EhbpDecryptingStream(new MemoryStream(responseWire[frame..]), token.OpenResponse(nonceHeader), 1 << 20);
        var e = await Assert.ThrowsAsync<AttestationException>(() => tail.ReadAsync(new byte[10], TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(ErrorCode.EhbpChunkOutOfOrder, e.Code);
    }

    [Fact]
    public void Another_response_nonce_or_none_does_not_open_the_response()
    {
        var (skR, pkR) = X25519Kem.GenerateKeyPair(Random);
        using var client = EhbpClientExchange.Create(pkR, Random);
        var requestWire = client.SealBody("{}"u8);
        using var token = client.ExportRecoveryToken();
        var (_, responseWire) = Serve(skR, client.EncapsulatedKeyHeader, requestWire, "{}"u8.ToArray(), "answer"u8.ToArray());

        using var wrong = token.OpenResponse(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        Assert.Equal(ErrorCode.EhbpChunkAuthenticationFailed, Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(responseWire, wrong, 1024)).Code);
        Assert.Equal(ErrorCode.EhbpResponseNonceMissing, Assert.Throws<AttestationException>(() => token.OpenResponse(null)).Code);
        Assert.Equal(ErrorCode.EhbpHeaderMalformed, Assert.Throws<AttestationException>(() => token.OpenResponse("00")).Code);
    }

    [Theory]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("not json")]
    [InlineData("{}")]
    [InlineData("{\"exportedSecret\":\"SECRET\"}")]
    [InlineData("{\"requestEnc\":\"ENC\"}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":\"ENC\",\"exportedSecret\":\"SECRET\"}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":\"ENC\"} {}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":\"ENC\"")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":null}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":\"0x\"}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":\"ENCab\"}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":\"UPPER\"}")]
    [InlineData("{\"exportedSecret\":\"SECRET\",\"requestEnc\":[\"ENC\"]}")]
    public void Malformed_tokens_are_a_typed_error(string template)
    {
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var enc = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var json = template.Replace("SECRET", secret, StringComparison.Ordinal).Replace("UPPER", enc.ToUpperInvariant() + "A", StringComparison.Ordinal)
            .Replace("ENC", enc, StringComparison.Ordinal);

        var e = Assert.Throws<AttestationException>(() => EhbpRecoveryToken.Parse(json));

        Assert.Equal(ErrorCode.EhbpRecoveryTokenInvalid, e.Code);
        Assert.DoesNotContain(secret, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_members_are_ignored_and_oversized_text_is_refused_before_parsing()
    {
        var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var enc = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        using var token = EhbpRecoveryToken.Parse($"{{\"note\":{{\"a\":[1]}},\"requestEnc\":\"{enc}\",\"exportedSecret\":\"{secret}\"}}");
        Assert.Equal(enc, Convert.ToHexStringLower(token.RequestEnc));

        var padded = $"{{\"pad\":\"{new string('x', EhbpRecoveryToken.MaxJsonBytes)}\",\"exportedSecret\":\"{secret}\",\"requestEnc\":\"{enc}\"}}";
        Assert.Equal(ErrorCode.EhbpRecoveryTokenInvalid, Assert.Throws<AttestationException>(() => EhbpRecoveryToken.Parse(padded)).Code);
    }

    [Fact]
    public void A_consumed_token_is_wiped_and_refuses_use()
    {
        var (_, pkR) = X25519Kem.GenerateKeyPair(Random);
        using var client = EhbpClientExchange.Create(pkR, Random);
        var token = client.ExportRecoveryToken();

        token.Dispose();

        Assert.Throws<ObjectDisposedException>(() => token.ToJson());
        Assert.Throws<ObjectDisposedException>(() => token.OpenResponse(new string('0', 64)));
        Assert.DoesNotContain("exportedSecret", token.ToString(), StringComparison.Ordinal);
    }

    /// <summary>The server side: opens the request (it must be <paramref name="expectedRequest"/>) and seals <paramref name="answer"/>.</summary>
    private static (string NonceHeader, byte[] Wire) Serve(byte[] skR, string encHeader, byte[] requestWire, byte[] expectedRequest, byte[] answer, int chunkBytes = 64 * 1024)
    {
        using var server = EhbpServerExchange.Accept(encHeader, skR);
        Assert.Equal(expectedRequest, server.OpenBody(requestWire, 1 << 20));
        var (nonceHeader, sealer) = server.CreateResponse(Random);
        using (sealer)
        {
            using var wire = new MemoryStream();
            for (var start = 0; start < answer.Length; start += chunkBytes)
            {
                wire.Write(sealer.SealFrame(answer.AsSpan(start, Math.Min(chunkBytes, answer.Length - start))));
            }

            return (nonceHeader, wire.ToArray());
        }
    }

    private static async Task<byte[]> DecryptAsync(EhbpRecoveryToken token, string nonceHeader, byte[] wire)
    {
        using var cipher = token.OpenResponse(nonceHeader);
        await using var plain = new EhbpDecryptingStream(new MemoryStream(wire), cipher, 1 << 20);
        using var output = new MemoryStream();
        await plain.CopyToAsync(output, TestContext.Current.CancellationToken);
        Assert.True(plain.Completed);
        return output.ToArray();
    }
}
