using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NBitcoin.Secp256k1;
using NSec.Cryptography;
using PrivateMl.Attestation.Verification;
using SHA256 = System.Security.Cryptography.SHA256;

namespace PrivateMl.Client.Tests;

public sealed class SignedResponseVerifierTests
{
    private static readonly byte[] Request = Encoding.UTF8.GetBytes("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}");
    private static readonly byte[] Response = Encoding.UTF8.GetBytes("data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"hello\"}}]}\n\ndata: [DONE]\n\n");

    private static string Text(byte[] request, byte[] response) =>
        $"{Convert.ToHexStringLower(SHA256.HashData(request))}:{Convert.ToHexStringLower(SHA256.HashData(response))}";

    private static (string Address, Func<string, string> Sign) EcdsaKey()
    {
        Assert.True(ECPrivKey.TryCreate(RandomNumberGenerator.GetBytes(32), out var key));
        var address = SignedResponseVerifier.RecoverEthereumAddress("probe"u8, SignEcdsa(key!, "probe"))!;
        return (address, text => SignEcdsa(key!, text));
    }

    private static string SignEcdsa(ECPrivKey key, string text)
    {
        Assert.True(key.TrySignRecoverable(SignedResponseVerifier.PersonalMessageDigest(Encoding.UTF8.GetBytes(text)), out var sig));
        var compact = new byte[65];
        sig!.WriteToSpanCompact(compact.AsSpan(0, 64), out var recId);
        compact[64] = (byte)(recId + 27);
        return "0x" + Convert.ToHexStringLower(compact);
    }

    private static byte[] Document(string text, string signature, string address, string algo) =>
        JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["text"] = text, ["signature"] = signature, ["signing_address"] = address, ["signing_algo"] = algo });

    [Fact]
    public void A_stream_signed_by_the_attested_ecdsa_key_verifies()
    {
        var (address, sign) = EcdsaKey();
        var text = Text(Request, Response);

        var checks = SignedResponseVerifier.Verify(Document(text, sign(text), address, "ecdsa"), Request, Response, address, "ecdsa");

        Assert.All(checks, c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
        Assert.Contains(checks, c => c.Name == SignedResponseVerifier.SignerCheck);
    }

    [Fact]
    public void Tampered_bytes_are_reported_as_TAMPERED()
    {
        var (address, sign) = EcdsaKey();
        var text = Text(Request, Response);
        var received = Response.ToArray();
        received[10] ^= 1;

        var checks = SignedResponseVerifier.Verify(Document(text, sign(text), address, "ecdsa"), Request, received, address, "ecdsa");

        var failure = Assert.Single(checks, c => c.Outcome == CheckOutcome.Failed);
        Assert.Equal(SignedResponseVerifier.ResponseHashCheck, failure.Name);
        Assert.Equal(ErrorCode.ResponseHashMismatch, failure.Code);
        Assert.StartsWith("TAMPERED", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_signature_by_a_key_that_was_not_attested_fails_the_signer_check()
    {
        var (attested, _) = EcdsaKey();
        var (other, signOther) = EcdsaKey();
        var text = Text(Request, Response);

        var checks = SignedResponseVerifier.Verify(Document(text, signOther(text), other, "ecdsa"), Request, Response, attested, "ecdsa");

        var failure = Assert.Single(checks, c => c.Outcome == CheckOutcome.Failed);
        Assert.Equal(SignedResponseVerifier.SignerCheck, failure.Name);
        Assert.Equal(ErrorCode.SignerNotAttested, failure.Code);
    }

    [Fact]
    public void An_unsigned_answer_is_reported_as_UNSIGNED()
    {
        var checks = SignedResponseVerifier.Verify("{}"u8, Request, Response, "0x00", "ecdsa");

        Assert.StartsWith("UNSIGNED", Assert.Single(checks).Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Ed25519_signatures_verify_under_the_attested_public_key_only()
    {
        using var key = Key.Create(SignatureAlgorithm.Ed25519);
        using var other = Key.Create(SignatureAlgorithm.Ed25519);
        var pub = Convert.ToHexStringLower(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
        var otherPub = Convert.ToHexStringLower(other.PublicKey.Export(KeyBlobFormat.RawPublicKey));
        var text = Text(Request, Response);
        var signature = Convert.ToHexStringLower(SignatureAlgorithm.Ed25519.Sign(key, Encoding.UTF8.GetBytes(text)));

        var good = SignedResponseVerifier.Verify(Document(text, signature, pub, "ed25519"), Request, Response, pub, "ed25519");
        var bad = SignedResponseVerifier.Verify(Document(text, signature, pub, "ed25519"), Request, Response, otherPub, "ed25519");

        Assert.All(good, c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
        Assert.Contains(bad, c => c.Name == SignedResponseVerifier.SignatureCheck && c.Code == ErrorCode.ResponseSignatureInvalid);
    }
}
