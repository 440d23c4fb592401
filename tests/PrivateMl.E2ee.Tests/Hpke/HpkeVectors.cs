using System.Text.Json;
using PrivateMl.E2ee.Hpke;
using PrivateMl.Testing;

namespace PrivateMl.E2ee.Tests.Hpke;

/// <summary>
/// The two HPKE base-mode vector sets in ../shared/testdata/e2ee: RFC 9180 A.1.1 (AES-128-GCM, published) and its
/// AES-256-GCM counterpart in derived-computed.json (computed, cross-checked with pyca/cryptography's HPKE).
/// </summary>
internal static class HpkeVectors
{
    public const string Rfc = "rfc9180-a.1.1";
    public const string Aes256 = "derived-aes-256-gcm";

    public static JsonElement Setup(string set) => set == Rfc
        ? Load("e2ee/rfc9180-hpke.json").GetProperty("base")
        : Load("e2ee/derived-computed.json").GetProperty("rfc9180_x25519_hkdfsha256_aes256gcm_base");

    public static JsonElement Encryptions(string set) => set == Rfc
        ? Load("e2ee/rfc9180-hpke.json").GetProperty("encryptions")
        : Setup(set).GetProperty("encryptions");

    public static JsonElement Exports(string set) => set == Rfc
        ? Load("e2ee/rfc9180-hpke.json").GetProperty("exports")
        : Setup(set).GetProperty("exports");

    public static HpkeSuite Suite(string set)
    {
        var s = Setup(set);
        return new HpkeSuite((HpkeKemId)s.GetProperty("kem_id").GetInt32(), (HpkeKdfId)s.GetProperty("kdf_id").GetInt32(), (HpkeAeadId)s.GetProperty("aead_id").GetInt32());
    }

    public static byte[] Hex(JsonElement e, string name) => Convert.FromHexString(e.GetProperty(name).GetString()!);

    /// <summary>(set, index) for every encryption of both sets; counts fixed by the files (6 each) so a shrunken file fails.</summary>
    public static TheoryData<string, int> EncryptionCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var set in new[] { Rfc, Aes256 })
        {
            for (var i = 0; i < 6; i++)
            {
                data.Add(set, i);
            }
        }

        return data;
    }

    public static TheoryData<string, int> ExportCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var set in new[] { Rfc, Aes256 })
        {
            for (var i = 0; i < 3; i++)
            {
                data.Add(set, i);
            }
        }

        return data;
    }

    private static JsonElement Load(string path) => JsonDocument.Parse(SharedTestData.ReadText(path)).RootElement;
}
