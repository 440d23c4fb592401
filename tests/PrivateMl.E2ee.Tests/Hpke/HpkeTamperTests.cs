using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Hpke;
using HpkeApi = PrivateMl.E2ee.Hpke.Hpke;

namespace PrivateMl.E2ee.Tests.Hpke;

/// <summary>What HPKE must refuse: changed bytes, wrong keys or info, low-order points, misuse of roles.</summary>
public sealed class HpkeTamperTests
{
    private static readonly byte[] Info = "tamper test"u8.ToArray();
    private static readonly byte[] Aad = "aad"u8.ToArray();
    private static readonly byte[] Plaintext = "the prompt that must stay private"u8.ToArray();

    public static TheoryData<HpkeAeadId> Aeads => new(HpkeAeadId.Aes128Gcm, HpkeAeadId.Aes256Gcm, HpkeAeadId.ChaCha20Poly1305);

    [Theory]
    [MemberData(nameof(Aeads))]
    public void Round_trip_with_a_random_ephemeral_works_for_each_aead(HpkeAeadId aead)
    {
        var suite = new HpkeSuite(HpkeKemId.DhkemX25519HkdfSha256, HpkeKdfId.HkdfSha256, aead);
        using var rng = RandomNumberGenerator.Create();
        var (skR, pkR) = X25519Kem.GenerateKeyPair(rng);
        var (enc, ct) = HpkeApi.SealBase(suite, pkR, Info, Aad, Plaintext, rng);

        Assert.Equal(Plaintext, HpkeApi.OpenBase(suite, enc, skR, Info, Aad, ct));
        Assert.NotEqual(Plaintext, ct.AsSpan(0, Plaintext.Length).ToArray());
    }

    [Fact]
    public void Every_single_bit_flip_in_the_ciphertext_is_rejected()
    {
        var (skR, enc, ct) = SealOne();
        for (var i = 0; i < ct.Length; i++)
        {
            var bad = (byte[])ct.Clone();
            bad[i] ^= 0x01;
            var error = Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc, skR, Info, Aad, bad));
            Assert.Equal(ErrorCode.HpkeOpenFailed, error.Code);
        }
    }

    [Fact]
    public void Changed_aad_info_enc_or_key_is_rejected()
    {
        var (skR, enc, ct) = SealOne();
        using var rng = RandomNumberGenerator.Create();
        var (otherSk, _) = X25519Kem.GenerateKeyPair(rng);
        var otherEnc = (byte[])enc.Clone();
        otherEnc[5] ^= 0x40;

        Assert.Equal(ErrorCode.HpkeOpenFailed, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc, skR, Info, "other"u8, ct)).Code);
        Assert.Equal(ErrorCode.HpkeOpenFailed, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc, skR, "other"u8, Aad, ct)).Code);
        Assert.Equal(ErrorCode.HpkeOpenFailed, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, otherEnc, skR, Info, Aad, ct)).Code);
        Assert.Equal(ErrorCode.HpkeOpenFailed, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc, otherSk, Info, Aad, ct)).Code);
    }

    [Fact]
    public void Truncated_ciphertext_and_wrong_length_enc_are_typed_errors()
    {
        var (skR, enc, ct) = SealOne();

        Assert.Equal(ErrorCode.HpkeOpenFailed, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc, skR, Info, Aad, ct.AsSpan(0, 15))).Code);
        Assert.Equal(ErrorCode.HpkeOpenFailed, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc, skR, Info, Aad, ct.AsSpan(0, ct.Length - 1))).Code);
        Assert.Equal(ErrorCode.HpkeInvalidKey, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, enc.AsSpan(0, 31), skR, Info, Aad, ct)).Code);
    }

    [Fact]
    public void Low_order_encapsulated_keys_are_refused_before_any_decryption()
    {
        var (skR, _, ct) = SealOne();
        // u = 0 and u = 1 are small-order points on Curve25519: the DH output is all zero (RFC 9180 §7.1.4).
        var zero = new byte[32];
        var one = new byte[32];
        one[0] = 1;

        Assert.Equal(ErrorCode.HpkeInvalidKey, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, zero, skR, Info, Aad, ct)).Code);
        Assert.Equal(ErrorCode.HpkeInvalidKey, Assert.Throws<AttestationException>(() => HpkeApi.OpenBase(HpkeSuite.Ehbp, one, skR, Info, Aad, ct)).Code);
    }

    [Fact]
    public void Sequence_exhaustion_is_an_error_not_a_nonce_reuse()
    {
        using var rng = RandomNumberGenerator.Create();
        var (_, pkR) = X25519Kem.GenerateKeyPair(rng);
        var (_, sender) = HpkeApi.SetupBaseSender(HpkeSuite.Ehbp, pkR, Info, rng);
        using (sender)
        {
            sender.SetSequenceForTest(ulong.MaxValue);
            Assert.Equal(ErrorCode.HpkeSequenceOverflow, Assert.Throws<AttestationException>(() => sender.Seal(Aad, Plaintext)).Code);
        }
    }

    [Fact]
    public void Roles_are_one_way_and_unsupported_suites_are_typed()
    {
        var (skR, enc, ct) = SealOne();
        using var recipient = HpkeApi.SetupBaseRecipient(HpkeSuite.Ehbp, enc, skR, Info);
        Assert.Throws<InvalidOperationException>(() => recipient.Seal(Aad, Plaintext));
        Assert.Equal(Plaintext, recipient.Open(Aad, ct));

        var error = Assert.Throws<AttestationException>(() => new HpkeSuite(HpkeKemId.DhkemX25519HkdfSha256, HpkeKdfId.HkdfSha256, (HpkeAeadId)0xFFFF));
        Assert.Equal(ErrorCode.HpkeUnsupportedSuite, error.Code);
    }

    private static (byte[] SkR, byte[] Enc, byte[] Ciphertext) SealOne()
    {
        using var rng = RandomNumberGenerator.Create();
        var (skR, pkR) = X25519Kem.GenerateKeyPair(rng);
        var (enc, ct) = HpkeApi.SealBase(HpkeSuite.Ehbp, pkR, Info, Aad, Plaintext, rng);
        return (skR, enc, ct);
    }
}
