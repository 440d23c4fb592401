using System.Text;
using System.Text.Json;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.E2ee.Tests.Aci;

public sealed class AciFieldCipherTests
{
    public static TheoryData<int> FieldVectors => [0, 1, 2];

    [Fact]
    public void Request_aad_matches_the_published_bytes()
    {
        var v = AciVectors.Vector("e2ee_v2_request_aad");
        var i = v.GetProperty("inputs");
        var aad = AciAad.Request(i.S("algo"), i.S("model"), i.S("field"), i.S("nonce"), i.GetProperty("ts").GetInt64());
        Assert.Equal(v.S("aad_jcs"), Encoding.UTF8.GetString(aad));
    }

    [Fact]
    public void Response_aad_matches_the_published_bytes()
    {
        var v = AciVectors.Vector("e2ee_v2_response_aad");
        var i = v.GetProperty("inputs");
        var aad = AciAad.Response(i.S("algo"), i.S("model"), i.S("id"), i.S("field"), i.S("nonce"), i.GetProperty("ts").GetInt64());
        Assert.Equal(v.S("aad_jcs"), Encoding.UTF8.GetString(aad));
    }

    [Theory]
    [MemberData(nameof(FieldVectors))]
    public void Sealing_with_the_vector_inputs_gives_the_vector_bytes(int index)
    {
        var v = AciVectors.FieldCiphertext(index);
        var suite = AciSuites.FromAlgo(v.S("suite"))!.Value;
        using var ephemeral = AciPrivateKey.FromSecret(suite, Convert.FromHexString(v.S("ephemeral_secret")));
        Assert.Equal(EphemeralPublic(v), ephemeral.PublicKeyHex);
        var recipientPublic = Convert.FromHexString(RecipientPublic(v));
        var field = AciFieldCipher.Seal(
            ephemeral, Convert.FromHexString(v.S("aes_gcm_nonce")), recipientPublic, Encoding.UTF8.GetBytes(v.S("plaintext_utf8")), Encoding.UTF8.GetBytes(v.S("aad_utf8")));
        Assert.Equal(v.S("field_value_hex"), field);
        Assert.Equal(v.S("aes_key"), Convert.ToHexStringLower(AciFieldCipher.DeriveKey(ephemeral, recipientPublic)!));
    }

    [Theory]
    [MemberData(nameof(FieldVectors))]
    public void Opening_the_vector_bytes_gives_the_plaintext(int index)
    {
        var v = AciVectors.FieldCiphertext(index);
        var suite = AciSuites.FromAlgo(v.S("suite"))!.Value;
        using var recipient = AciPrivateKey.FromSecret(suite, Convert.FromHexString(v.S("recipient_secret")));
        Assert.Equal(RecipientPublic(v), recipient.PublicKeyHex);
        var plaintext = AciFieldCipher.Open(recipient, v.S("field_value_hex"), Encoding.UTF8.GetBytes(v.S("aad_utf8")));
        Assert.Equal(v.S("plaintext_utf8"), Encoding.UTF8.GetString(plaintext));
    }

    [Theory]
    [MemberData(nameof(FieldVectors))]
    public void Another_aad_or_a_flipped_bit_fails_as_decryption_failed(int index)
    {
        var v = AciVectors.FieldCiphertext(index);
        var suite = AciSuites.FromAlgo(v.S("suite"))!.Value;
        using var recipient = AciPrivateKey.FromSecret(suite, Convert.FromHexString(v.S("recipient_secret")));
        var aad = v.S("aad_utf8");
        var moved = aad.Replace("messages.0.content", "messages.1.content", StringComparison.Ordinal).Replace("choices.0.", "choices.1.", StringComparison.Ordinal);
        Assert.NotEqual(aad, moved);
        var e = Assert.Throws<AciE2eeException>(() => AciFieldCipher.Open(recipient, v.S("field_value_hex"), Encoding.UTF8.GetBytes(moved)));
        Assert.Equal(AciE2eeError.DecryptionFailed, e.Error);
        var field = v.S("field_value_hex").ToCharArray();
        field[^1] = field[^1] == '0' ? '1' : '0';
        e = Assert.Throws<AciE2eeException>(() => AciFieldCipher.Open(recipient, new string(field), Encoding.UTF8.GetBytes(aad)));
        Assert.Equal("e2ee_decryption_failed", e.Code);
        e = Assert.Throws<AciE2eeException>(() => AciFieldCipher.Open(recipient, "zz" + v.S("field_value_hex")[2..], Encoding.UTF8.GetBytes(aad)));
        Assert.Equal(AciE2eeError.DecryptionFailed, e.Error);
        e = Assert.Throws<AciE2eeException>(() => AciFieldCipher.Open(recipient, v.S("field_value_hex")[..40], Encoding.UTF8.GetBytes(aad)));
        Assert.Equal(AciE2eeError.DecryptionFailed, e.Error);
    }

    [Theory]
    [InlineData(AciSuite.X25519)]
    [InlineData(AciSuite.Secp256k1)]
    public void Every_seal_uses_a_fresh_ephemeral_key_and_nonce(AciSuite suite)
    {
        using var recipient = AciPrivateKey.Create(suite);
        var aad = "aad"u8.ToArray();
        var a = AciFieldCipher.Seal(suite, recipient.PublicKey, "same"u8, aad);
        var b = AciFieldCipher.Seal(suite, recipient.PublicKey, "same"u8, aad);
        var pubChars = 2 * suite.PublicKeyBytes();
        Assert.NotEqual(a[..pubChars], b[..pubChars]);
        Assert.NotEqual(a.Substring(pubChars, 24), b.Substring(pubChars, 24));
        Assert.Equal("same", Encoding.UTF8.GetString(AciFieldCipher.Open(recipient, a, aad)));
        Assert.Equal("same", Encoding.UTF8.GetString(AciFieldCipher.Open(recipient, b, aad)));
    }

    [Theory]
    [InlineData(AciSuite.X25519)]
    [InlineData(AciSuite.Secp256k1)]
    public void Degenerate_ephemeral_keys_fail_as_decryption_failed(AciSuite suite)
    {
        using var recipient = AciPrivateKey.Create(suite);
        var field = new string('0', 2 * (suite.PublicKeyBytes() + AciFieldCipher.NonceBytes + AciFieldCipher.TagBytes + 4));
        var e = Assert.Throws<AciE2eeException>(() => AciFieldCipher.Open(recipient, field, "aad"u8));
        Assert.Equal(AciE2eeError.DecryptionFailed, e.Error);
    }

    [Fact]
    public void Secp256k1_keys_without_the_04_prefix_are_normalised()
    {
        var v = AciVectors.FieldCiphertext(2);
        var full = v.S("recipient_public_uncompressed");
        Assert.Equal(full, Convert.ToHexStringLower(AciSuite.Secp256k1.ParsePublicKey("0x" + full[2..].ToUpperInvariant())!));
        Assert.Null(AciSuite.Secp256k1.ParsePublicKey("04" + new string('1', 128)));
        Assert.Null(AciSuite.X25519.ParsePublicKey(full));
    }

    private static string RecipientPublic(JsonElement v) =>
        v.TryGetProperty("recipient_public", out var p) ? p.GetString()! : v.S("recipient_public_uncompressed");

    private static string EphemeralPublic(JsonElement v) =>
        v.TryGetProperty("ephemeral_public", out var p) ? p.GetString()! : v.S("ephemeral_public_uncompressed");
}
