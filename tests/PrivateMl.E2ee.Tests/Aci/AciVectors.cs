using System.Text.Json;
using PrivateMl.Testing;

namespace PrivateMl.E2ee.Tests.Aci;

/// <summary>Reads ../shared/testdata/e2ee vectors (ACI reference vectors and the derived field ciphertexts).</summary>
internal static class AciVectors
{
    public const string Published = "e2ee/aci-private-ai-gateway.json";
    public const string Derived = "e2ee/derived-computed.json";

    public static JsonElement Vector(string name)
    {
        using var doc = JsonDocument.Parse(SharedTestData.ReadText(Published));
        foreach (var v in doc.RootElement.GetProperty("vectors").EnumerateArray())
        {
            if (v.GetProperty("name").GetString() == name)
            {
                return v.Clone();
            }
        }

        throw new InvalidOperationException("no vector " + name);
    }

    public static JsonElement Published_(string property)
    {
        using var doc = JsonDocument.Parse(SharedTestData.ReadText(Published));
        return doc.RootElement.GetProperty(property).Clone();
    }

    public static JsonElement FieldCiphertext(int index)
    {
        using var doc = JsonDocument.Parse(SharedTestData.ReadText(Derived));
        return doc.RootElement.GetProperty("aci_e2ee_v2_field_ciphertexts")[index].Clone();
    }

    public static string S(this JsonElement e, string name) => e.GetProperty(name).GetString()!;
}
