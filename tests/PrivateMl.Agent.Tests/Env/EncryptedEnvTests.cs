using System.Security.Cryptography;
using System.Text;
using PrivateMl.Agent.Env;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>
/// The encrypted env blob (research/dstack.md §7.2, §7.5): dstack's own decrypt vector, the computed encryption
/// vector, round trips, and every way an attacker can alter or truncate a blob.
/// </summary>
public sealed class EncryptedEnvTests
{
    // §7.5, dstack v0.5.5 dstack-util/src/crypto.rs::test_dh_decrypt
    private const string DstackKey = "7c282bf94b35dc47801dc953bfa0896fc2bd313381d3e8eca4e42f6536d2a96f";
    private const string DstackBlob = "0bd18749612f4c8b9dd583c7d6a646b90abd34e3c731a7708d0caf9039095641e1f0948e775f0b7351788db7f246d51806954626dcccb6a60d64665ca3715c6bef75616cab476d27bba04080361200d6a58cec";

    // §7.5, encryption to the §6.3 env key
    private const string EnvCryptKey = "226c77f981e1a9fbd28bc4088a75cd05205f9ff2f5f5d56bd5b14b7888c4433b";
    private const string EnvPublicKey = "31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244";
    private const string VectorPlaintext = "{\"env\": [{\"key\": \"FOO\", \"value\": \"bar\"}]}";
    private const string VectorBlob = "04c7576ed148cbfc2757b2ac6b626a1eade91e7bddce1a2802a99a71021ebe50000102030405060708090a0bf18c6406ad452c42628578f08305db601cb6f2e948a9d646e725c8b7c0618848cc83fdf44262c84a9df7c8dbdfb4f7795eaa8300c64faddfdd";

    [Fact]
    public void Decrypt_DstackTestVector()
    {
        var plaintext = EncryptedEnv.Decrypt(Convert.FromHexString(DstackBlob), Convert.FromHexString(DstackKey));
        Assert.Equal("[{\"key\":\"\",\"value\":\"\"}]", Encoding.UTF8.GetString(plaintext));
    }

    [Fact]
    public void Encrypt_WithFixedEphemeralAndIv_MatchesVector()
    {
        var ephemeral = SHA256.HashData("dstack-env-test-ephemeral"u8);
        var blob = EncryptedEnv.Encrypt(Encoding.UTF8.GetBytes(VectorPlaintext), Convert.FromHexString(EnvPublicKey), ephemeral, Convert.FromHexString("000102030405060708090a0b"));
        Assert.Equal(VectorBlob, Convert.ToHexStringLower(blob));
    }

    [Fact]
    public void Decrypt_ComputedVector_ThenParse()
    {
        var plaintext = EncryptedEnv.Decrypt(Convert.FromHexString(VectorBlob), Convert.FromHexString(EnvCryptKey));
        Assert.Equal(VectorPlaintext, Encoding.UTF8.GetString(plaintext));
        var parsed = EnvVariables.Parse(plaintext, ["FOO"]);
        Assert.Equal("bar", Assert.Single(parsed.Variables).Value);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4096)]
    public void Encrypt_RoundTrips_WithFreshRandomness(int length)
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var plaintext = RandomNumberGenerator.GetBytes(length);
        var publicKey = EncryptedEnv.PublicKeyOf(key);
        var first = EncryptedEnv.Encrypt(plaintext, publicKey, RandomNumberGenerator.Create());
        var second = EncryptedEnv.Encrypt(plaintext, publicKey, RandomNumberGenerator.Create());

        Assert.Equal(EncryptedEnv.Overhead + length, first.Length);
        Assert.NotEqual(first.AsSpan(0, EncryptedEnv.HeaderSize).ToArray(), second.AsSpan(0, EncryptedEnv.HeaderSize).ToArray());
        Assert.Equal(plaintext, EncryptedEnv.Decrypt(first, key));
        Assert.Equal(plaintext, EncryptedEnv.Decrypt(second, key));
    }

    public static TheoryData<string, int> TamperPositions => new()
    {
        { "ephemeral key", 3 },
        { "iv", EncryptedEnv.KeySize + 1 },
        { "ciphertext", EncryptedEnv.HeaderSize + 2 },
        { "tag", -1 },
    };

    [Theory]
    [MemberData(nameof(TamperPositions))]
    public void Rejects_BlobWithFlippedBit(string field, int position)
    {
        var blob = Convert.FromHexString(VectorBlob);
        blob[position < 0 ? blob.Length + position : position] ^= 0x01;
        var error = Assert.Throws<AttestationException>(() => EncryptedEnv.Decrypt(blob, Convert.FromHexString(EnvCryptKey)));
        Assert.True(error.Code == ErrorCode.EnvDecryptionFailed, $"{field}: {error.Code}");
    }

    [Fact]
    public void Rejects_WrongKey()
    {
        var error = Assert.Throws<AttestationException>(() => EncryptedEnv.Decrypt(Convert.FromHexString(VectorBlob), Convert.FromHexString(DstackKey)));
        Assert.Equal(ErrorCode.EnvDecryptionFailed, error.Code);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(EncryptedEnv.KeySize)]
    [InlineData(EncryptedEnv.Overhead - 1)]
    public void Rejects_TruncatedBlob(int length)
    {
        var blob = Convert.FromHexString(VectorBlob)[..length];
        var error = Assert.Throws<AttestationException>(() => EncryptedEnv.Decrypt(blob, Convert.FromHexString(EnvCryptKey)));
        Assert.Equal(ErrorCode.EnvCiphertextMalformed, error.Code);
    }

    [Fact]
    public void Accepts_EmptyPlaintextAtMinimumLength_Rejects_OneByteOverMaximum()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var empty = EncryptedEnv.Encrypt([], EncryptedEnv.PublicKeyOf(key), RandomNumberGenerator.Create());
        Assert.Equal(EncryptedEnv.Overhead, empty.Length);
        Assert.Empty(EncryptedEnv.Decrypt(empty, key));

        var atLimit = EncryptedEnv.Encrypt(new byte[EncryptedEnv.MaxBlobBytes - EncryptedEnv.Overhead], EncryptedEnv.PublicKeyOf(key), RandomNumberGenerator.Create());
        Assert.Equal(EncryptedEnv.MaxBlobBytes, atLimit.Length);
        Assert.Equal(EncryptedEnv.MaxBlobBytes - EncryptedEnv.Overhead, EncryptedEnv.Decrypt(atLimit, key).Length);

        var error = Assert.Throws<AttestationException>(() => EncryptedEnv.Decrypt(new byte[EncryptedEnv.MaxBlobBytes + 1], key));
        Assert.Equal(ErrorCode.EnvCiphertextMalformed, error.Code);
    }

    [Fact]
    public void Rejects_LowOrderEphemeralKey()
    {
        // The all-zero point: X25519 yields an all-zero secret, which libsodium (and so we) refuse.
        var blob = Convert.FromHexString(VectorBlob);
        blob.AsSpan(0, EncryptedEnv.KeySize).Clear();
        var error = Assert.Throws<AttestationException>(() => EncryptedEnv.Decrypt(blob, Convert.FromHexString(EnvCryptKey)));
        Assert.Equal(ErrorCode.EnvDecryptionFailed, error.Code);
    }

    [Fact]
    public void Encrypt_Refuses_LowOrderOrShortRecipientKey()
    {
        Assert.Throws<ArgumentException>(() => EncryptedEnv.Encrypt("x"u8, new byte[32], RandomNumberGenerator.Create()));
        Assert.Throws<ArgumentException>(() => EncryptedEnv.Encrypt("x"u8, new byte[31], RandomNumberGenerator.Create()));
    }
}
