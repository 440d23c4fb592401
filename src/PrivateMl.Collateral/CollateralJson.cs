using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Collateral;

/// <summary>
/// Reads and writes dcap-qvl's collateral JSON. Writing uses dcap-qvl's own layout (two-space indent, no escaping of
/// <c>+</c> or <c>/</c>), so a bundle fetched from a PCCS is byte-identical to the file dcap-qvl would write.
/// </summary>
public static class CollateralJson
{
    /// <summary>Bundles larger than this are refused before parsing (real ones are 15–20 KB).</summary>
    public const int MaxBundleBytes = 4 * 1024 * 1024;

    /// <param name="collateral">The bundle to write.</param>
    /// <param name="indented">Two-space indentation (dcap-qvl's pretty form) or one line (its compact form).</param>
    public static string Serialize(DcapCollateral collateral, bool indented = true)
    {
        ArgumentNullException.ThrowIfNull(collateral);
        var context = indented ? CollateralJsonContext.Relaxed : CollateralJsonContext.RelaxedCompact;
        return JsonSerializer.Serialize(collateral, context.DcapCollateral);
    }

    /// <summary>Parses a bundle; anything that is not complete collateral JSON is <c>CollateralMalformed</c>.</summary>
    public static DcapCollateral Parse(ReadOnlySpan<byte> utf8Json, string origin)
    {
        if (utf8Json.Length > MaxBundleBytes)
        {
            throw CollateralErrors.Malformed($"{origin}: {utf8Json.Length} bytes exceeds the {MaxBundleBytes}-byte limit for a collateral bundle");
        }

        DcapCollateral? collateral;
        try
        {
            collateral = JsonSerializer.Deserialize(utf8Json, CollateralJsonContext.Default.DcapCollateral);
        }
        catch (JsonException ex)
        {
            throw CollateralErrors.Malformed($"{origin}: not dcap-qvl collateral JSON ({ex.Message})", ex);
        }

        if (collateral is null)
        {
            throw CollateralErrors.Malformed($"{origin}: the JSON is null, expected a collateral object");
        }

        // Required members may still be JSON null for reference types; refuse those here rather than later.
        if (collateral.PckCrlIssuerChain is null || collateral.RootCaCrl is null || collateral.PckCrl is null
            || collateral.TcbInfoIssuerChain is null || collateral.TcbInfo is null || collateral.TcbInfoSignature is null
            || collateral.QeIdentityIssuerChain is null || collateral.QeIdentity is null || collateral.QeIdentitySignature is null)
        {
            throw CollateralErrors.Malformed($"{origin}: a required collateral member is null");
        }

        return collateral;
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, IndentSize = 2)]
[JsonSerializable(typeof(DcapCollateral))]
internal sealed partial class CollateralJsonContext : JsonSerializerContext
{
    private static CollateralJsonContext? relaxed;
    private static CollateralJsonContext? relaxedCompact;

    public static CollateralJsonContext RelaxedCompact => relaxedCompact ??= new CollateralJsonContext(new JsonSerializerOptions
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>Context whose options keep <c>+</c>, <c>/</c> and <c>'</c> unescaped, as serde_json writes them.</summary>
    public static CollateralJsonContext Relaxed => relaxed ??= new CollateralJsonContext(new JsonSerializerOptions
    {
        WriteIndented = true,
        IndentSize = 2,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
