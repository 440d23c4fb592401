using System.Globalization;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral;

namespace PrivateMl.Client;

/// <summary>
/// Everything needed to re-verify a node later, offline, on another machine: the report exactly as received, the nonce
/// this run sent, the collateral used, the time of verification and the verdict reached (<c>privateml-evidence/1</c>).
/// Re-verification trusts nothing in the bundle's verdict: it runs every check again from the report and collateral,
/// as of <see cref="VerifiedAt"/> (collateral may have expired since; the evidence was fresh then).
/// </summary>
public sealed record EvidenceBundle
{
    public const string FormatName = "privateml-evidence/1";

    public const int MaxBundleBytes = NodeReport.MaxReportBytes + CollateralJson.MaxBundleBytes + (1024 * 1024);

    public string? BaseAddress { get; init; }

    public required ReadOnlyMemory<byte> Nonce { get; init; }

    public required DateTimeOffset VerifiedAt { get; init; }

    public required ReadOnlyMemory<byte> ReportJson { get; init; }

    public DcapCollateral? Collateral { get; init; }

    public bool? RecordedTrusted { get; init; }

    public static EvidenceBundle From(NodeVerificationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new EvidenceBundle
        {
            BaseAddress = result.BaseAddress,
            Nonce = result.Nonce,
            VerifiedAt = result.VerifiedAt,
            ReportJson = result.ReportJson,
            Collateral = result.Collateral,
            RecordedTrusted = result.Trusted,
        };
    }

    /// <summary>Writes the bundle; the verdict of <paramref name="result"/> is included for readers, not for re-verification.</summary>
    public static byte[] Write(NodeVerificationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            if (result.BaseAddress is not null)
            {
                w.WriteString("base_url", result.BaseAddress);
            }

            w.WriteString("nonce", Convert.ToHexStringLower(result.Nonce.Span));
            w.WriteString("verified_at", result.VerifiedAt.ToString("O", CultureInfo.InvariantCulture));
            w.WritePropertyName("report");
            if (result.ReportJson.IsEmpty)
            {
                w.WriteNullValue();
            }
            else
            {
                try
                {
                    using var doc = JsonDocument.Parse(result.ReportJson);
                    doc.RootElement.WriteTo(w);
                }
                catch (JsonException)
                {
                    w.WriteStringValue(Encoding.UTF8.GetString(result.ReportJson.Span));
                }
            }

            w.WritePropertyName("collateral");
            if (result.Collateral is null)
            {
                w.WriteNullValue();
            }
            else
            {
                using var doc = JsonDocument.Parse(CollateralJson.Serialize(result.Collateral, indented: false));
                doc.RootElement.WriteTo(w);
            }

            w.WritePropertyName("verdict");
            NodeResultJson.WriteVerdict(w, result);
            w.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>Reads a bundle; throws <see cref="AttestationException"/> (<see cref="ErrorCode.ReportMalformed"/>) when it is not one.</summary>
    public static EvidenceBundle Parse(ReadOnlySpan<byte> utf8Json)
    {
        if (utf8Json.Length > MaxBundleBytes)
        {
            throw Malformed($"the bundle is {utf8Json.Length} bytes, more than {MaxBundleBytes}");
        }

        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = 64 });
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != FormatName)
            {
                throw Malformed($"not a {FormatName} evidence bundle");
            }

            var nonceHex = root.TryGetProperty("nonce", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : throw Malformed("the bundle has no nonce");
            if (nonceHex.Length != 64 || !nonceHex.All(char.IsAsciiHexDigit))
            {
                throw Malformed("the bundle's nonce is not 32 bytes of hex");
            }

            var at = root.TryGetProperty("verified_at", out var t) && t.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParse(t.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var parsed)
                ? parsed
                : throw Malformed("the bundle has no verified_at time");
            if (!root.TryGetProperty("report", out var report) || report.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("the bundle holds no report");
            }

            DcapCollateral? collateral = null;
            if (root.TryGetProperty("collateral", out var c) && c.ValueKind == JsonValueKind.Object)
            {
                collateral = CollateralJson.Parse(Encoding.UTF8.GetBytes(c.GetRawText()), "the bundle's collateral");
            }

            bool? trusted = root.TryGetProperty("verdict", out var v) && v.ValueKind == JsonValueKind.Object
                && v.TryGetProperty("trusted", out var tr) && tr.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? tr.GetBoolean()
                : null;
            return new EvidenceBundle
            {
                BaseAddress = root.TryGetProperty("base_url", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null,
                Nonce = Convert.FromHexString(nonceHex),
                VerifiedAt = at,
                ReportJson = Encoding.UTF8.GetBytes(report.GetRawText()),
                Collateral = collateral,
                RecordedTrusted = trusted,
            };
        }
        catch (JsonException e)
        {
            throw Malformed("the bundle is not JSON: " + e.Message);
        }
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.ReportMalformed, message);
}
