using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Hpke;

/// <summary>
/// RFC 9180 base mode (mode_base = 0x00) setup for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-GCM or
/// ChaCha20-Poly1305, assembled from library primitives: BouncyCastle X25519, BCL HKDF, AesGcm and ChaCha20Poly1305.
/// </summary>
public static class Hpke
{
    private const byte ModeBase = 0x00;

    /// <summary>SetupBaseS(pkR, info) with a fresh ephemeral key from <paramref name="random"/>: returns (enc, sender context).</summary>
    public static (byte[] Enc, HpkeContext Context) SetupBaseSender(HpkeSuite suite, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, RandomNumberGenerator random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var (skE, _) = X25519Kem.GenerateKeyPair(random);
        try
        {
            return SetupBaseSenderWithEphemeral(suite, recipientPublicKey, info, skE);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(skE);
        }
    }

    /// <summary>SetupBaseS with a caller-chosen ephemeral private key (deterministic; for known-answer tests only).</summary>
    internal static (byte[] Enc, HpkeContext Context) SetupBaseSenderWithEphemeral(HpkeSuite suite, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> ephemeralPrivateKey)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var (sharedSecret, enc) = X25519Kem.Encap(recipientPublicKey, ephemeralPrivateKey);
        try
        {
            return (enc, KeySchedule(suite, HpkeRole.Sender, sharedSecret, info));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(sharedSecret);
        }
    }

    /// <summary>SetupBaseR(enc, skR, info): the recipient context. A bad <paramref name="enc"/> fails with <see cref="ErrorCode.HpkeInvalidKey"/>.</summary>
    public static HpkeContext SetupBaseRecipient(HpkeSuite suite, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPrivateKey, ReadOnlySpan<byte> info)
    {
        ArgumentNullException.ThrowIfNull(suite);
        if (enc.Length != X25519Kem.EncapsulatedKeyLength)
        {
            throw new AttestationException(ErrorCode.HpkeInvalidKey, $"an encapsulated X25519 key is {X25519Kem.EncapsulatedKeyLength} bytes, not {enc.Length}");
        }

        var sharedSecret = X25519Kem.Decap(enc, recipientPrivateKey);
        try
        {
            return KeySchedule(suite, HpkeRole.Recipient, sharedSecret, info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(sharedSecret);
        }
    }

    /// <summary>Single-shot SealBase: setup, one seal at sequence 0.</summary>
    public static (byte[] Enc, byte[] Ciphertext) SealBase(HpkeSuite suite, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, RandomNumberGenerator random)
    {
        var (enc, context) = SetupBaseSender(suite, recipientPublicKey, info, random);
        using (context)
        {
            return (enc, context.Seal(aad, plaintext));
        }
    }

    /// <summary>Single-shot OpenBase: setup, one open at sequence 0.</summary>
    public static byte[] OpenBase(HpkeSuite suite, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPrivateKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext)
    {
        using var context = SetupBaseRecipient(suite, enc, recipientPrivateKey, info);
        return context.Open(aad, ciphertext);
    }

    /// <summary>RFC 9180 §5.1 KeySchedule for mode_base (psk and psk_id empty).</summary>
    private static HpkeContext KeySchedule(HpkeSuite suite, HpkeRole role, ReadOnlySpan<byte> sharedSecret, ReadOnlySpan<byte> info)
    {
        var suiteId = suite.SuiteId();
        var pskIdHash = HpkeKdf.LabeledExtract(suiteId, [], "psk_id_hash"u8, []);
        var infoHash = HpkeKdf.LabeledExtract(suiteId, [], "info_hash"u8, info);
        var context = new byte[1 + pskIdHash.Length + infoHash.Length];
        context[0] = ModeBase;
        pskIdHash.CopyTo(context, 1);
        infoHash.CopyTo(context, 1 + pskIdHash.Length);
        var secret = HpkeKdf.LabeledExtract(suiteId, sharedSecret, "secret"u8, []);
        var key = HpkeKdf.LabeledExpand(suiteId, secret, "key"u8, context, suite.KeyLength);
        var baseNonce = HpkeKdf.LabeledExpand(suiteId, secret, "base_nonce"u8, context, HpkeSuite.NonceLength);
        var exporterSecret = HpkeKdf.LabeledExpand(suiteId, secret, "exp"u8, context, HpkeSuite.HashLength);
        return new HpkeContext(suite, role, key, baseNonce, exporterSecret, context, secret);
    }
}
