using System.Text;
using System.Text.Json;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.E2ee.Hpke;
using PrivateMl.Testing;

namespace PrivateMl.E2ee.Tests.Ehbp;

/// <summary>
/// EHBP against ../shared/testdata/e2ee/ehbp-tinfoil.json (published Tinfoil vectors) and the computed end-to-end
/// exchange in derived-computed.json, in both directions where the vector allows.
/// </summary>
public sealed class EhbpVectorTests
{
    private static JsonElement Tinfoil(string name) =>
        JsonDocument.Parse(SharedTestData.ReadText("e2ee/ehbp-tinfoil.json")).RootElement.GetProperty("vectors").EnumerateArray()
            .Single(v => v.GetProperty("name").GetString() == name);

    private static JsonElement EndToEnd =>
        JsonDocument.Parse(SharedTestData.ReadText("e2ee/derived-computed.json")).RootElement.GetProperty("ehbp_end_to_end");

    private static byte[] Hex(JsonElement e, string name) => Convert.FromHexString(e.GetProperty(name).GetString()!);

    [Fact]
    public void Constants_match_the_published_protocol()
    {
        var c = JsonDocument.Parse(SharedTestData.ReadText("e2ee/ehbp-tinfoil.json")).RootElement.GetProperty("constants");
        Assert.Equal(c.GetProperty("hpke_info_request").GetString(), Encoding.ASCII.GetString(EhbpProtocol.RequestInfo));
        Assert.Equal(c.GetProperty("export_label").GetString(), Encoding.ASCII.GetString(EhbpProtocol.ResponseExportLabel));
        Assert.Equal(EhbpProtocol.ResponseSecretLength, c.GetProperty("export_length").GetInt32());
        Assert.Equal(EhbpProtocol.ResponseNonceLength, c.GetProperty("response_nonce_length").GetInt32());
        Assert.Equal(EhbpProtocol.KeysPath, c.GetProperty("keys_path").GetString());
        Assert.Equal(EhbpProtocol.KeysMediaType, c.GetProperty("keys_media_type").GetString());
        Assert.Equal(EhbpProtocol.EncapsulatedKeyHeader, c.GetProperty("request_header").GetString());
        Assert.Equal(EhbpProtocol.ResponseNonceHeader, c.GetProperty("response_header").GetString());
        Assert.Equal(EhbpProtocol.KeyConfigProblemType, c.GetProperty("problem_type_key_config").GetString());
    }

    [Fact]
    public void Response_keys_derive_as_published()
    {
        var v = Tinfoil("derive_response_keys").GetProperty("published");
        var (key, nonceBase) = EhbpResponseKeys.Derive(Hex(v, "exportedSecret"), Hex(v, "requestEnc"), Hex(v, "responseNonce"));

        Assert.Equal(Hex(v, "derivedKey"), key);
        Assert.Equal(Hex(v, "derivedNonceBase"), nonceBase);
    }

    [Fact]
    public void Published_response_decrypts_and_sealing_the_plaintext_gives_the_same_bytes()
    {
        var v = Tinfoil("response_decryption").GetProperty("published");
        using (var opener = EhbpResponseKeys.Cipher(Hex(v, "exportedSecret"), Hex(v, "requestEnc"), Hex(v, "responseNonce")))
        {
            Assert.Equal(Hex(v, "plaintext"), EhbpFraming.OpenAll(Hex(v, "encryptedResponse"), opener, 1024));
            Assert.Equal(1UL, opener.Sequence);
        }

        using var sealer = EhbpResponseKeys.Cipher(Hex(v, "exportedSecret"), Hex(v, "requestEnc"), Hex(v, "responseNonce"));
        Assert.Equal(Hex(v, "encryptedResponse"), sealer.SealFrame(Hex(v, "plaintext")));
    }

    [Theory]
    [InlineData("response_nonce_xor_seq_1")]
    [InlineData("response_nonce_xor_large_seq")]
    public void Chunk_nonce_is_the_base_xor_the_counter(string name)
    {
        var v = Tinfoil(name);
        var seqText = v.GetProperty("seq").ValueKind == JsonValueKind.Number ? v.GetProperty("seq").GetUInt64().ToString(System.Globalization.CultureInfo.InvariantCulture) : v.GetProperty("seq").GetString()!;
        var seq = seqText.StartsWith("0x", StringComparison.Ordinal) ? Convert.ToUInt64(seqText[2..], 16) : ulong.Parse(seqText, System.Globalization.CultureInfo.InvariantCulture);
        using var cipher = new EhbpChunkCipher(new byte[32], Hex(v, "nonce_base"));
        var nonce = new byte[12];
        cipher.Nonce(seq, nonce);

        Assert.Equal(Hex(v, "nonce"), nonce);
    }

    [Fact]
    public void Key_config_encodes_and_parses_as_published()
    {
        var v = Tinfoil("key_config_single");
        var config = EhbpKeyConfig.ParseFirst(Hex(v, "key_config_hex"));

        Assert.Equal(Hex(v, "key_config_hex"), EhbpKeyConfig.Encode(Hex(v, "public_key")));
        Assert.Equal(Hex(v, "public_key"), config.PublicKey);
        Assert.Equal(0, config.KeyId);
    }

    [Fact]
    public void First_of_two_concatenated_key_configs_wins()
    {
        var v = Tinfoil("key_config_two_concatenated_first_wins");
        Assert.Equal(Hex(v, "expected_public_key"), EhbpKeyConfig.ParseFirst(Hex(v, "key_config_hex")).PublicKey);
    }

    [Fact]
    public void End_to_end_request_seals_to_the_vector_bytes_and_the_server_opens_it()
    {
        var v = EndToEnd;
        var (skR, pkR) = X25519Kem.DeriveKeyPair(Hex(v, "server_ikmR"));
        var (skE, _) = X25519Kem.DeriveKeyPair(Hex(v, "client_ikmE"));
        var plaintext = Encoding.UTF8.GetBytes(v.GetProperty("request_plaintext_utf8").GetString()!);
        var twoChunks = v.GetProperty("request_body_two_chunks");

        Assert.Equal(Hex(v, "server_skR"), skR);
        Assert.Equal(Hex(v, "key_config"), EhbpKeyConfig.Encode(pkR));
        using (var client = EhbpClientExchange.CreateWithEphemeral(pkR, skE))
        {
            Assert.Equal(v.GetProperty("Ehbp_Encapsulated_Key").GetString(), client.EncapsulatedKeyHeader);
            Assert.Equal(Hex(v, "request_body_one_chunk"), client.SealBody(plaintext, chunkBytes: 4096));
        }

        using (var client = EhbpClientExchange.CreateWithEphemeral(pkR, skE))
        {
            var split = twoChunks.GetProperty("split_at").GetInt32();
            byte[] wire = [.. client.Request.SealFrame(plaintext.AsSpan(0, split)), .. client.Request.SealFrame(plaintext.AsSpan(split))];
            Assert.Equal(Hex(twoChunks, "wire"), wire);
        }

        foreach (var wire in new[] { Hex(v, "request_body_one_chunk"), Hex(twoChunks, "wire") })
        {
            using var server = EhbpServerExchange.Accept(v.GetProperty("Ehbp_Encapsulated_Key").GetString(), skR);
            Assert.Equal(plaintext, server.OpenBody(wire, 1024));
        }
    }

    [Fact]
    public void End_to_end_response_seals_to_the_vector_bytes_and_the_client_opens_it()
    {
        var v = EndToEnd;
        var (skR, pkR) = X25519Kem.DeriveKeyPair(Hex(v, "server_ikmR"));
        var (skE, _) = X25519Kem.DeriveKeyPair(Hex(v, "client_ikmE"));
        var plaintext = Encoding.UTF8.GetBytes(v.GetProperty("response_plaintext_utf8").GetString()!);
        var twoChunks = v.GetProperty("response_body_two_chunks");
        var split = twoChunks.GetProperty("split_at").GetInt32();
        var nonceHeader = v.GetProperty("Ehbp_Response_Nonce").GetString()!;

        using (var server = EhbpServerExchange.Accept(v.GetProperty("Ehbp_Encapsulated_Key").GetString(), skR))
        {
            var (header, sealer) = server.CreateResponse(Convert.FromHexString(nonceHeader));
            using (sealer)
            {
                Assert.Equal(nonceHeader, header);
                Assert.Equal(Hex(v, "response_body_one_chunk"), sealer.SealFrame(plaintext));
            }

            var (_, sealer2) = server.CreateResponse(Convert.FromHexString(nonceHeader));
            using (sealer2)
            {
                byte[] wire = [.. sealer2.SealFrame(plaintext.AsSpan(0, split)), .. sealer2.SealFrame(plaintext.AsSpan(split))];
                Assert.Equal(Hex(twoChunks, "wire"), wire);
            }
        }

        foreach (var wire in new[] { Hex(v, "response_body_one_chunk"), Hex(twoChunks, "wire") })
        {
            using var client = EhbpClientExchange.CreateWithEphemeral(pkR, skE);
            using var opener = client.OpenResponse(nonceHeader);
            Assert.Equal(plaintext, EhbpFraming.OpenAll(wire, opener, 1024));
        }
    }
}
