using System.Buffers.Binary;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Hpke;

/// <summary>RFC 9180 §7.1 KEM identifiers implemented here.</summary>
public enum HpkeKemId : ushort
{
    DhkemX25519HkdfSha256 = 0x0020,
}

/// <summary>RFC 9180 §7.2 KDF identifiers implemented here.</summary>
public enum HpkeKdfId : ushort
{
    HkdfSha256 = 0x0001,
}

/// <summary>RFC 9180 §7.3 AEAD identifiers implemented here (all from the BCL).</summary>
public enum HpkeAeadId : ushort
{
    Aes128Gcm = 0x0001,
    Aes256Gcm = 0x0002,
    ChaCha20Poly1305 = 0x0003,
}

/// <summary>
/// One HPKE ciphersuite: DHKEM(X25519, HKDF-SHA256) and HKDF-SHA256 with one of the AEADs. <see cref="Ehbp"/> is the
/// suite EHBP uses (X25519 / HKDF-SHA256 / AES-256-GCM).
/// </summary>
public sealed record HpkeSuite
{
    public static readonly HpkeSuite Ehbp = new(HpkeKemId.DhkemX25519HkdfSha256, HpkeKdfId.HkdfSha256, HpkeAeadId.Aes256Gcm);

    public HpkeSuite(HpkeKemId kem, HpkeKdfId kdf, HpkeAeadId aead)
    {
        if (kem != HpkeKemId.DhkemX25519HkdfSha256 || kdf != HpkeKdfId.HkdfSha256 || !Enum.IsDefined(aead))
        {
            throw new AttestationException(ErrorCode.HpkeUnsupportedSuite, $"HPKE suite kem 0x{(ushort)kem:x4} kdf 0x{(ushort)kdf:x4} aead 0x{(ushort)aead:x4} is not supported");
        }

        Kem = kem;
        Kdf = kdf;
        Aead = aead;
    }

    public HpkeKemId Kem { get; }

    public HpkeKdfId Kdf { get; }

    public HpkeAeadId Aead { get; }

    /// <summary>Nk: the AEAD key length.</summary>
    public int KeyLength => Aead == HpkeAeadId.Aes128Gcm ? 16 : 32;

    /// <summary>Nn: the AEAD nonce length.</summary>
    public const int NonceLength = 12;

    /// <summary>Nt: the AEAD tag length.</summary>
    public const int TagLength = 16;

    /// <summary>Nh: the KDF output length.</summary>
    public const int HashLength = 32;

    /// <summary>The key-schedule suite_id: <c>"HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2)</c>.</summary>
    internal byte[] SuiteId()
    {
        var id = new byte[10];
        "HPKE"u8.CopyTo(id);
        BinaryPrimitives.WriteUInt16BigEndian(id.AsSpan(4), (ushort)Kem);
        BinaryPrimitives.WriteUInt16BigEndian(id.AsSpan(6), (ushort)Kdf);
        BinaryPrimitives.WriteUInt16BigEndian(id.AsSpan(8), (ushort)Aead);
        return id;
    }
}
