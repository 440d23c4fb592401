using System.Text.Json;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Tdx;

/// <summary>Access to the real DCAP vectors in ../shared/testdata/tdx (never copied into the repository).</summary>
internal static class Vectors
{
    public const string Expected = "tdx/expected.json";

    public static readonly string[] QuoteNames = ["tdx_quote", "tdx_quote_outdated", "sgx_quote", "tdx-quote.hex", "quote-from-tappd.hex"];

    public static readonly string[] CollateralNames = ["tdx_quote_collateral.json", "tdx_quote_outdated_collateral.json", "sgx_quote_collateral.json"];

    private static readonly Lazy<JsonDocument> ExpectedDoc = new(() => JsonDocument.Parse(SharedTestData.ReadText(Expected)));

    public static JsonElement ExpectedJson => ExpectedDoc.Value.RootElement;

    /// <summary>The quote bytes of a named vector, decoded with <see cref="QuoteInput.Decode(ReadOnlySpan{byte})"/>.</summary>
    public static byte[] Quote(string name) => QuoteInput.Decode(SharedTestData.ReadBytes("tdx/dcap-qvl/" + name));

    public static string CollateralText(string name) => SharedTestData.ReadText("tdx/dcap-qvl/" + name);

    public static DcapCollateral Collateral(string name) => JsonSerializer.Deserialize<DcapCollateral>(CollateralText(name))!;

    public static JsonElement Parsed(string quoteName) => ExpectedJson.GetProperty("quotes").GetProperty(quoteName).GetProperty("parsed");

    public static JsonElement Case(string id) =>
        ExpectedJson.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("id").GetString() == id);

    public static string Hex(ReadOnlyMemory<byte> bytes) => Convert.ToHexStringLower(bytes.Span);
}
