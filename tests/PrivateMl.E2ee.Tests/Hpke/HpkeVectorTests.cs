using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Hpke;
using static PrivateMl.E2ee.Tests.Hpke.HpkeVectors;
using HpkeApi = PrivateMl.E2ee.Hpke.Hpke;

namespace PrivateMl.E2ee.Tests.Hpke;

/// <summary>RFC 9180 base mode against every value of the vector files, sealing and opening.</summary>
public sealed class HpkeVectorTests
{
    public static TheoryData<string> Sets => new(Rfc, Aes256);

    public static TheoryData<string, int> Encryptions => EncryptionCases();

    public static TheoryData<string, int> Exports => ExportCases();

    [Theory]
    [MemberData(nameof(Sets))]
    public void DeriveKeyPair_reproduces_both_key_pairs(string set)
    {
        var s = Setup(set);
        var (skE, pkE) = X25519Kem.DeriveKeyPair(Hex(s, "ikmE"));
        var (skR, pkR) = X25519Kem.DeriveKeyPair(Hex(s, "ikmR"));

        Assert.Equal(Hex(s, "skEm"), skE);
        Assert.Equal(Hex(s, "pkEm"), pkE);
        Assert.Equal(Hex(s, "skRm"), skR);
        Assert.Equal(Hex(s, "pkRm"), pkR);
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Sender_and_recipient_setup_reproduce_the_key_schedule(string set)
    {
        var s = Setup(set);
        var (enc, sender) = HpkeApi.SetupBaseSenderWithEphemeral(Suite(set), Hex(s, "pkRm"), Hex(s, "info"), Hex(s, "skEm"));
        using var recipient = HpkeApi.SetupBaseRecipient(Suite(set), Hex(s, "enc"), Hex(s, "skRm"), Hex(s, "info"));
        using (sender)
        {
            Assert.Equal(Hex(s, "enc"), enc);
            foreach (var context in new[] { sender, recipient })
            {
                Assert.Equal(Hex(s, "key_schedule_context"), context.KeyScheduleContext);
                Assert.Equal(Hex(s, "secret"), context.Secret);
                Assert.Equal(Hex(s, "key"), context.Key);
                Assert.Equal(Hex(s, "base_nonce"), context.BaseNonce);
                Assert.Equal(Hex(s, "exporter_secret"), context.ExporterSecret);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Encryptions))]
    public void Seal_gives_the_vector_ciphertext(string set, int index)
    {
        var s = Setup(set);
        var e = HpkeVectors.Encryptions(set)[index];
        var (_, sender) = HpkeApi.SetupBaseSenderWithEphemeral(Suite(set), Hex(s, "pkRm"), Hex(s, "info"), Hex(s, "skEm"));
        using (sender)
        {
            var seq = (ulong)e.GetProperty("sequence_number").GetInt32();
            sender.SetSequenceForTest(seq);
            Assert.Equal(Hex(e, "ct"), sender.Seal(Hex(e, "aad"), Hex(e, "pt")));
            Assert.Equal(seq + 1, sender.Sequence);
        }
    }

    [Theory]
    [MemberData(nameof(Encryptions))]
    public void Open_recovers_the_vector_plaintext(string set, int index)
    {
        var s = Setup(set);
        var e = HpkeVectors.Encryptions(set)[index];
        using var recipient = HpkeApi.SetupBaseRecipient(Suite(set), Hex(s, "enc"), Hex(s, "skRm"), Hex(s, "info"));
        recipient.SetSequenceForTest((ulong)e.GetProperty("sequence_number").GetInt32());
        Assert.Equal(Hex(e, "pt"), recipient.Open(Hex(e, "aad"), Hex(e, "ct")));
    }

    [Theory]
    [MemberData(nameof(Encryptions))]
    public void Open_at_another_sequence_fails_and_keeps_the_sequence(string set, int index)
    {
        var s = Setup(set);
        var e = HpkeVectors.Encryptions(set)[index];
        using var recipient = HpkeApi.SetupBaseRecipient(Suite(set), Hex(s, "enc"), Hex(s, "skRm"), Hex(s, "info"));
        var wrong = (ulong)e.GetProperty("sequence_number").GetInt32() + 1;
        recipient.SetSequenceForTest(wrong);
        var error = Assert.Throws<AttestationException>(() => recipient.Open(Hex(e, "aad"), Hex(e, "ct")));
        Assert.Equal(ErrorCode.HpkeOpenFailed, error.Code);
        Assert.Equal(wrong, recipient.Sequence);
    }

    [Theory]
    [MemberData(nameof(Exports))]
    public void Export_gives_the_vector_value_on_both_sides(string set, int index)
    {
        var s = Setup(set);
        var x = HpkeVectors.Exports(set)[index];
        var (_, sender) = HpkeApi.SetupBaseSenderWithEphemeral(Suite(set), Hex(s, "pkRm"), Hex(s, "info"), Hex(s, "skEm"));
        using var recipient = HpkeApi.SetupBaseRecipient(Suite(set), Hex(s, "enc"), Hex(s, "skRm"), Hex(s, "info"));
        using (sender)
        {
            var length = x.GetProperty("L").GetInt32();
            Assert.Equal(Hex(x, "exported_value"), sender.Export(Hex(x, "exporter_context"), length));
            Assert.Equal(Hex(x, "exported_value"), recipient.Export(Hex(x, "exporter_context"), length));
        }
    }

    [Fact]
    public void Cross_check_ciphertext_with_empty_aad_opens()
    {
        var s = Setup(Aes256);
        var ct = Convert.FromHexString(s.GetProperty("cross_check").GetProperty("seq0_empty_aad_ct").GetString()!);
        var pt = HpkeApi.OpenBase(Suite(Aes256), Hex(s, "enc"), Hex(s, "skRm"), Hex(s, "info"), [], ct);
        Assert.Equal(Hex(HpkeVectors.Encryptions(Aes256)[0], "pt"), pt);
    }
}
