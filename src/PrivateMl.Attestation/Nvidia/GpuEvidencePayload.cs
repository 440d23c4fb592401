using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>How an item's <c>evidence</c> string was encoded.</summary>
public enum GpuEvidenceEncoding
{
    /// <summary>base64 of the raw SPDM bytes (nvtrust ≥ 2.0, NVIDIA C++ SDK, NEAR, private-ml-sdk).</summary>
    Base64Raw,

    /// <summary>base64 of the lower/upper-case hex text of the SPDM bytes (nvtrust 1.x / NRAS v1, before Oct 2024).</summary>
    Base64Hex,
}

/// <summary>One GPU's evidence: the SPDM report bytes and the PEM certificate chain exactly as decoded.</summary>
public sealed record GpuEvidenceItem
{
    public required string Arch { get; init; }

    /// <summary>The attestation report (SPDM request ‖ response) bytes.</summary>
    public required byte[] Evidence { get; init; }

    /// <summary>The decoded <c>certificate</c> field: PEM text of the chain, possibly followed by NULs.</summary>
    public required byte[] CertificateChainPem { get; init; }

    /// <summary>The item's own nonce (lower-case hex) when present.</summary>
    public string? Nonce { get; init; }

    public GpuEvidenceEncoding EvidenceEncoding { get; init; } = GpuEvidenceEncoding.Base64Raw;
}

/// <summary>
/// The GPU evidence JSON the NEAR / dstack stack returns and NVIDIA's NRAS accepts:
/// <c>{"nonce": hex, "evidence_list": [{"certificate": b64, "evidence": b64, "arch": …}, …], "arch": "HOPPER"}</c>.
/// <see cref="Parse(string)"/> accepts every shape seen in the wild (any key order, compact or spaced, items with or
/// without their own nonce, evidence as base64 of raw bytes or of hex text, certificates with trailing NULs);
/// <see cref="ToJson"/> writes the private-ml-sdk shape byte-for-byte (keys <c>nonce, evidence_list, arch</c>,
/// Python <c>json.dumps</c> separators).
/// </summary>
public sealed record GpuEvidencePayload
{
    /// <summary>Bounds checked before anything is decoded.</summary>
    public const int MaxJsonLength = 4 * 1024 * 1024;
    public const int MaxItems = 64;
    public const int MaxCertificateChainBytes = 64 * 1024;

    /// <summary>The payload nonce, lower-case hex of 32 bytes.</summary>
    public required string Nonce { get; init; }

    public required string Arch { get; init; }

    public required IReadOnlyList<GpuEvidenceItem> Items { get; init; }

    /// <summary>Parses the JSON text; throws <see cref="AttestationException"/> (only) on malformed input.</summary>
    public static GpuEvidencePayload Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (json.Length > MaxJsonLength)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"GPU evidence payload is {json.Length} characters; at most {MaxJsonLength} are accepted");
        }

        return Parse(Encoding.UTF8.GetBytes(json));
    }

    /// <summary>Parses UTF-8 JSON; throws <see cref="AttestationException"/> (only) on malformed input.</summary>
    public static GpuEvidencePayload Parse(ReadOnlySpan<byte> utf8Json)
    {
        if (utf8Json.Length > MaxJsonLength)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"GPU evidence payload is {utf8Json.Length} bytes; at most {MaxJsonLength} are accepted");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8Json.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceMalformed, $"GPU evidence payload is not JSON: {e.Message}", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("the payload is not a JSON object");
            }

            var nonce = NormalizeNonce(RequiredString(root, "nonce"), "payload nonce");
            var arch = root.TryGetProperty("arch", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : GpuArchitecture.Hopper;
            if (!root.TryGetProperty("evidence_list", out var list) || list.ValueKind != JsonValueKind.Array)
            {
                throw Malformed("evidence_list is missing or not an array");
            }

            var count = list.GetArrayLength();
            if (count == 0)
            {
                throw Malformed("evidence_list is empty");
            }

            if (count > MaxItems)
            {
                throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"evidence_list has {count} items; at most {MaxItems} are accepted");
            }

            var items = new List<GpuEvidenceItem>(count);
            foreach (var element in list.EnumerateArray())
            {
                items.Add(ParseItem(element, arch, items.Count));
            }

            return new GpuEvidencePayload { Nonce = nonce, Arch = arch, Items = items };
        }
    }

    /// <summary>Parses one item object (also used for NVIDIA SDK evidence arrays).</summary>
    public static GpuEvidenceItem ParseItem(JsonElement element, string defaultArch, int index)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Malformed($"evidence_list[{index}] is not an object");
        }

        var arch = element.TryGetProperty("arch", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : defaultArch;
        var evidenceText = RequiredString(element, "evidence", index);
        var certText = RequiredString(element, "certificate", index);
        if (evidenceText.Length > SpdmLayout.MaxReportSize * 4)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"evidence_list[{index}].evidence is {evidenceText.Length} characters");
        }

        if (certText.Length > MaxCertificateChainBytes * 4 / 3 + 4)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"evidence_list[{index}].certificate is {certText.Length} characters");
        }

        var (evidence, encoding) = DecodeEvidence(evidenceText, index);
        var cert = DecodeBase64(certText, $"evidence_list[{index}].certificate");
        string? nonce = null;
        if (element.TryGetProperty("nonce", out var n) && n.ValueKind == JsonValueKind.String)
        {
            nonce = NormalizeNonce(n.GetString()!, $"evidence_list[{index}].nonce");
        }

        return new GpuEvidenceItem { Arch = arch, Evidence = evidence, CertificateChainPem = cert, Nonce = nonce, EvidenceEncoding = encoding };
    }

    /// <summary>
    /// Joins payloads collected over the same nonce (say, one per GPU or per host partition) into one, items in the
    /// order given. Throws <see cref="AttestationException"/> (GpuNonceMismatch) when the nonces differ.
    /// </summary>
    public static GpuEvidencePayload Merge(IEnumerable<GpuEvidencePayload> payloads)
    {
        ArgumentNullException.ThrowIfNull(payloads);
        var list = payloads.ToList();
        if (list.Count == 0)
        {
            throw Malformed("nothing to merge");
        }

        if (list.Any(p => p.Nonce != list[0].Nonce))
        {
            throw new AttestationException(ErrorCode.GpuNonceMismatch, "payloads collected over different nonces cannot be merged");
        }

        var items = list.SelectMany(p => p.Items).ToList();
        if (items.Count > MaxItems)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"{items.Count} items; at most {MaxItems}");
        }

        return new GpuEvidencePayload { Nonce = list[0].Nonce, Arch = list[0].Arch, Items = items };
    }

    /// <summary>
    /// Writes the private-ml-sdk serialization: <c>{"nonce": …, "evidence_list": [{"certificate": …, "evidence": …,
    /// "arch": …[, "nonce": …]}], "arch": …}</c> with <c>", "</c> and <c>": "</c> separators. Item nonces are written
    /// only when <paramref name="includeItemNonce"/> is set (NRAS ignores them).
    /// </summary>
    public string ToJson(bool includeItemNonce = false)
    {
        var sb = new StringBuilder(256 + Items.Count * 12_000);
        sb.Append("{\"nonce\": ").Append(Quote(Nonce)).Append(", \"evidence_list\": [");
        for (var i = 0; i < Items.Count; i++)
        {
            var item = Items[i];
            if (i > 0)
            {
                sb.Append(", ");
            }

            sb.Append("{\"certificate\": \"").Append(Convert.ToBase64String(item.CertificateChainPem))
                .Append("\", \"evidence\": \"").Append(Convert.ToBase64String(item.Evidence))
                .Append("\", \"arch\": ").Append(Quote(item.Arch));
            if (includeItemNonce && item.Nonce is not null)
            {
                sb.Append(", \"nonce\": ").Append(Quote(item.Nonce));
            }

            sb.Append('}');
        }

        sb.Append("], \"arch\": ").Append(Quote(Arch)).Append('}');
        return sb.ToString();
    }

    private static string Quote(string s) => "\"" + JsonEncodedText.Encode(s, JavaScriptEncoder.Default).ToString() + "\"";

    private static (byte[] Bytes, GpuEvidenceEncoding Encoding) DecodeEvidence(string text, int index)
    {
        var bytes = DecodeBase64(text, $"evidence_list[{index}].evidence");

        // Raw SPDM 1.1 reports start 0x11 0xE0; the legacy form is ASCII hex ("11e0…").
        if (bytes.Length >= 4 && bytes.Length % 2 == 0 && IsHexText(bytes))
        {
            try
            {
                return (Convert.FromHexString(Encoding.ASCII.GetString(bytes)), GpuEvidenceEncoding.Base64Hex);
            }
            catch (FormatException)
            {
                // fall through: not hex after all
            }
        }

        return (bytes, GpuEvidenceEncoding.Base64Raw);
    }

    private static bool IsHexText(ReadOnlySpan<byte> b)
    {
        foreach (var c in b)
        {
            if (!char.IsAsciiHexDigit((char)c))
            {
                return false;
            }
        }

        return true;
    }

    private static byte[] DecodeBase64(string text, string what)
    {
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException e)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceMalformed, $"{what} is not base64", e);
        }
    }

    private static string NormalizeNonce(string hex, string what)
    {
        if (hex.Length != SpdmLayout.NonceSize * 2 || !hex.All(char.IsAsciiHexDigit))
        {
            throw Malformed($"{what} must be {SpdmLayout.NonceSize * 2} hex digits");
        }

        return hex.ToLowerInvariant();
    }

    private static string RequiredString(JsonElement obj, string name, int? index = null)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.String)
        {
            throw Malformed(index is null ? $"{name} is missing or not a string" : $"evidence_list[{index}].{name} is missing or not a string");
        }

        return v.GetString()!;
    }

    private static AttestationException Malformed(string why) => new(ErrorCode.GpuEvidenceMalformed, why);
}
