using System.Buffers.Binary;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Hpke;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// The body of <c>/.well-known/hpke-keys</c>: one RFC 9458 §3 key config, <c>key_id(1) ‖ kem_id(2) ‖ public_key(32) ‖
/// suites_length(2) ‖ (kdf_id(2) ‖ aead_id(2))*</c>, without the §3.2 two-byte length prefix (as EHBP serves it).
/// Clients use the first config and ignore what follows.
/// </summary>
public sealed record EhbpKeyConfig(byte KeyId, byte[] PublicKey)
{
    /// <summary>The largest key-config body read (a config with 16 suites is 101 bytes).</summary>
    public const int MaxBytes = 4096;

    private const int FixedPartLength = 1 + 2 + X25519Kem.PublicKeyLength + 2;

    /// <summary>The key config EHBP serves for <paramref name="publicKey"/>: one suite, HKDF-SHA256 / AES-256-GCM.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> publicKey, byte keyId = 0)
    {
        if (publicKey.Length != X25519Kem.PublicKeyLength)
        {
            throw new ArgumentException("an X25519 public key is 32 bytes", nameof(publicKey));
        }

        var config = new byte[FixedPartLength + 4];
        config[0] = keyId;
        BinaryPrimitives.WriteUInt16BigEndian(config.AsSpan(1), (ushort)HpkeKemId.DhkemX25519HkdfSha256);
        publicKey.CopyTo(config.AsSpan(3));
        BinaryPrimitives.WriteUInt16BigEndian(config.AsSpan(35), 4);
        BinaryPrimitives.WriteUInt16BigEndian(config.AsSpan(37), (ushort)HpkeKdfId.HkdfSha256);
        BinaryPrimitives.WriteUInt16BigEndian(config.AsSpan(39), (ushort)HpkeAeadId.Aes256Gcm);
        return config;
    }

    /// <summary>Parses the first key config; it must offer DHKEM(X25519) with HKDF-SHA256 / AES-256-GCM.</summary>
    public static EhbpKeyConfig ParseFirst(ReadOnlySpan<byte> body)
    {
        if (body.Length > MaxBytes)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigMalformed, $"the key config body is longer than {MaxBytes} bytes");
        }

        if (body.Length < 3)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigMalformed, "the key config is truncated");
        }

        var kem = BinaryPrimitives.ReadUInt16BigEndian(body[1..]);
        if (kem != (ushort)HpkeKemId.DhkemX25519HkdfSha256)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigUnsupported, $"the key config uses KEM 0x{kem:x4}, not DHKEM(X25519, HKDF-SHA256)");
        }

        if (body.Length < FixedPartLength)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigMalformed, "the key config is truncated");
        }

        var suitesLength = BinaryPrimitives.ReadUInt16BigEndian(body[35..]);
        if (suitesLength == 0 || suitesLength % 4 != 0 || body.Length - FixedPartLength < suitesLength)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigMalformed, $"the key config's suite list length {suitesLength} is invalid");
        }

        var suites = body.Slice(FixedPartLength, suitesLength);
        var offers = false;
        for (var i = 0; i < suites.Length; i += 4)
        {
            offers |= BinaryPrimitives.ReadUInt16BigEndian(suites[i..]) == (ushort)HpkeKdfId.HkdfSha256
                && BinaryPrimitives.ReadUInt16BigEndian(suites[(i + 2)..]) == (ushort)HpkeAeadId.Aes256Gcm;
        }

        if (!offers)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigUnsupported, "the key config does not offer HKDF-SHA256 / AES-256-GCM");
        }

        return new EhbpKeyConfig(body[0], body.Slice(3, X25519Kem.PublicKeyLength).ToArray());
    }
}
