using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;
using Rfc7748 = Org.BouncyCastle.Math.EC.Rfc7748;

namespace PrivateMl.E2ee.Hpke;

/// <summary>
/// RFC 9180 §4.1 DHKEM(X25519, HKDF-SHA256). The X25519 function is BouncyCastle's RFC 7748 implementation (it gives
/// the raw DH output, which the labelled extract needs); the KDF is the BCL's HKDF.
/// </summary>
public static class X25519Kem
{
    public const int PublicKeyLength = 32;
    public const int PrivateKeyLength = 32;
    public const int EncapsulatedKeyLength = 32;
    public const int SharedSecretLength = 32;

    private static readonly byte[] KemSuiteId = [(byte)'K', (byte)'E', (byte)'M', 0x00, 0x20];

    /// <summary>A fresh key pair from <paramref name="random"/> (RFC 9180 GenerateKeyPair).</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) GenerateKeyPair(RandomNumberGenerator random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var sk = new byte[PrivateKeyLength];
        random.GetBytes(sk);
        return (sk, PublicKeyOf(sk));
    }

    /// <summary>RFC 9180 §7.1.3 DeriveKeyPair(ikm): the private key is the unclamped expand output (X25519 clamps on use).</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) DeriveKeyPair(ReadOnlySpan<byte> ikm)
    {
        var prk = HpkeKdf.LabeledExtract(KemSuiteId, [], "dkp_prk"u8, ikm);
        try
        {
            var sk = HpkeKdf.LabeledExpand(KemSuiteId, prk, "sk"u8, [], PrivateKeyLength);
            return (sk, PublicKeyOf(sk));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
        }
    }

    /// <summary>The public key of a 32-byte private key.</summary>
    public static byte[] PublicKeyOf(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != PrivateKeyLength)
        {
            throw new AttestationException(ErrorCode.HpkeInvalidKey, $"an X25519 private key is {PrivateKeyLength} bytes, not {privateKey.Length}");
        }

        var k = privateKey.ToArray();
        try
        {
            var pk = new byte[PublicKeyLength];
            Rfc7748.X25519.ScalarMultBase(k, 0, pk, 0);
            return pk;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(k);
        }
    }

    /// <summary>Encap(pkR) with an ephemeral key from <paramref name="ephemeralPrivateKey"/>: returns (shared_secret, enc).</summary>
    internal static (byte[] SharedSecret, byte[] Enc) Encap(ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> ephemeralPrivateKey)
    {
        var enc = PublicKeyOf(ephemeralPrivateKey);
        var dh = Dh(ephemeralPrivateKey, recipientPublicKey);
        try
        {
            return (ExtractAndExpand(dh, enc, recipientPublicKey), enc);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    /// <summary>Decap(enc, skR): the shared secret; a malformed or low-order <paramref name="enc"/> fails with <see cref="ErrorCode.HpkeInvalidKey"/>.</summary>
    internal static byte[] Decap(ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPrivateKey)
    {
        var pkR = PublicKeyOf(recipientPrivateKey);
        var dh = Dh(recipientPrivateKey, enc);
        try
        {
            return ExtractAndExpand(dh, enc, pkR);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    private static byte[] Dh(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        if (privateKey.Length != PrivateKeyLength || publicKey.Length != PublicKeyLength)
        {
            throw new AttestationException(ErrorCode.HpkeInvalidKey, "an X25519 key must be 32 bytes");
        }

        var k = privateKey.ToArray();
        var u = publicKey.ToArray();
        var shared = new byte[32];
        try
        {
            // RFC 9180 §7.1.4: abort on the all-zero output of a low-order point.
            if (!Rfc7748.X25519.CalculateAgreement(k, 0, u, 0, shared, 0))
            {
                throw new AttestationException(ErrorCode.HpkeInvalidKey, "the X25519 public key is of low order (all-zero shared secret)");
            }

            return shared;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(k);
        }
    }

    private static byte[] ExtractAndExpand(ReadOnlySpan<byte> dh, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> pkR)
    {
        var context = new byte[enc.Length + pkR.Length];
        enc.CopyTo(context);
        pkR.CopyTo(context.AsSpan(enc.Length));
        var prk = HpkeKdf.LabeledExtract(KemSuiteId, [], "eae_prk"u8, dh);
        try
        {
            return HpkeKdf.LabeledExpand(KemSuiteId, prk, "shared_secret"u8, context, SharedSecretLength);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
        }
    }
}
