using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>Access to ../shared/testdata/nvidia and its expected.json.</summary>
internal static class NvidiaVectors
{
    /// <summary>Inside every device chain's validity and the README's own check time.</summary>
    public static readonly DateTimeOffset Now = new(2026, 7, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly Lazy<JsonElement> ExpectedJson = new(() =>
    {
        using var doc = JsonDocument.Parse(SharedTestData.ReadText("nvidia/expected.json"));
        return doc.RootElement.Clone();
    });

    public static JsonElement Expected => ExpectedJson.Value;

    public static TheoryData<string> Keys(string section)
    {
        var data = new TheoryData<string>();
        if (!SharedTestData.IsPresent)
        {
            data.Add("(shared test data missing)");
            return data;
        }

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedTestData.RepositoryRoot, "..", "shared", "testdata", "nvidia", "expected.json")));
        foreach (var p in doc.RootElement.GetProperty(section).EnumerateObject())
        {
            data.Add(p.Name);
        }

        return data;
    }

    public static byte[] Report(string file) => Convert.FromHexString(SharedTestData.ReadText("nvidia/" + file).Trim());

    public static byte[] Chain(string file) => SharedTestData.ReadBytes("nvidia/" + file);

    public static GpuEvidenceItem Item(string reportFile)
    {
        var e = Expected.GetProperty("spdm").GetProperty(reportFile);
        return new GpuEvidenceItem
        {
            Arch = e.GetProperty("arch").GetString()!,
            Evidence = Report(reportFile),
            CertificateChainPem = Chain(e.GetProperty("chain_file").GetString()!),
        };
    }

    public static byte[] NonceOf(JsonElement expectedItem) => Convert.FromHexString(expectedItem.GetProperty("spdm_request_nonce").GetString()!);

    public static string B64(byte[] b) => Convert.ToBase64String(b);

    public static string PayloadJson(string nonceHex, params GpuEvidenceItem[] items) =>
        new GpuEvidencePayload { Nonce = nonceHex, Arch = items[0].Arch, Items = items }.ToJson();

    public static string Ascii(byte[] b) => Encoding.ASCII.GetString(b);
}
