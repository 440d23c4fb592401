using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Client;

/// <summary>
/// An attestation report in the seed proxy's shape (<c>GET /v1/attestation/report</c> of nearai/private-ml-sdk's
/// vllm-proxy, which our gateway also serves): <c>signing_address</c>, <c>signing_algo</c>, <c>request_nonce</c>,
/// <c>intel_quote</c> (hex), <c>nvidia_payload</c> (a JSON string, or null), <c>event_log</c> (parsed JSON array, or
/// that array as a string), <c>info</c> (the dstack agent's Info) and optionally <c>report_data</c> (hex). Nothing in
/// it is trusted: every member is checked against the quote. Parsing is bounded and fails with
/// <see cref="ErrorCode.ReportMalformed"/>.
/// </summary>
public sealed record NodeReport
{
    /// <summary>Largest report accepted (quote, event log, GPU evidence for 8 GPUs fit well within).</summary>
    public const int MaxReportBytes = 16 * 1024 * 1024;

    public required string SigningAddress { get; init; }

    /// <summary><c>ecdsa</c> (20-byte Ethereum address) or <c>ed25519</c> (32-byte public key), lower case.</summary>
    public required string SigningAlgo { get; init; }

    public string? RequestNonce { get; init; }

    public required byte[] Quote { get; init; }

    public string? NvidiaPayload { get; init; }

    /// <summary>Why the node sent no GPU evidence (<c>nvidia_payload_unavailable</c>), when it said.</summary>
    public string? NvidiaPayloadUnavailable { get; init; }

    /// <summary>The event log as JSON array text, or null when absent.</summary>
    public string? EventLogJson { get; init; }

    /// <summary>The raw <c>info</c> object text, or null.</summary>
    public string? InfoJson { get; init; }

    /// <summary>The <c>app_compose</c> text the node published in <c>info.tcb_info</c>, or null.</summary>
    public string? PublishedAppCompose { get; init; }

    public byte[]? ReportData { get; init; }

    /// <summary>Parses the report; throws <see cref="AttestationException"/> (<see cref="ErrorCode.ReportMalformed"/>).</summary>
    public static NodeReport Parse(ReadOnlySpan<byte> utf8Json)
    {
        if (utf8Json.Length > MaxReportBytes)
        {
            throw Malformed($"the report is {utf8Json.Length} bytes, more than the {MaxReportBytes} accepted");
        }

        JsonDocument doc;
        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = 64 });
            doc = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            throw Malformed("the report is not JSON: " + e.Message);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("the report is not a JSON object");
            }

            var address = RequiredString(root, "signing_address");
            var algo = OptionalString(root, "signing_algo")?.ToLowerInvariant() ?? "ecdsa";
            var quoteHex = RequiredString(root, "intel_quote");
            var quote = Hex(quoteHex, "intel_quote");
            string? eventLog = null;
            if (root.TryGetProperty("event_log", out var log))
            {
                eventLog = log.ValueKind switch
                {
                    JsonValueKind.Array => log.GetRawText(),
                    JsonValueKind.String => log.GetString(),
                    JsonValueKind.Null => null,
                    _ => throw Malformed("event_log is neither an array nor a string"),
                };
            }

            string? nvidia = null;
            if (root.TryGetProperty("nvidia_payload", out var nv))
            {
                nvidia = nv.ValueKind switch
                {
                    JsonValueKind.String => nv.GetString(),
                    JsonValueKind.Object => nv.GetRawText(),
                    JsonValueKind.Null => null,
                    _ => throw Malformed("nvidia_payload is neither a string nor null"),
                };
            }

            string? infoJson = null;
            string? compose = null;
            if (root.TryGetProperty("info", out var info) && info.ValueKind == JsonValueKind.Object)
            {
                infoJson = info.GetRawText();
                compose = ReadPublishedCompose(info);
            }

            var reportDataHex = OptionalString(root, "report_data");
            return new NodeReport
            {
                SigningAddress = address,
                SigningAlgo = algo,
                RequestNonce = OptionalString(root, "request_nonce"),
                Quote = quote,
                NvidiaPayload = string.IsNullOrEmpty(nvidia) ? null : nvidia,
                NvidiaPayloadUnavailable = OptionalString(root, "nvidia_payload_unavailable"),
                EventLogJson = eventLog,
                InfoJson = infoJson,
                PublishedAppCompose = compose,
                ReportData = reportDataHex is null ? null : Hex(reportDataHex, "report_data"),
            };
        }
    }

    /// <summary>
    /// The signing identity's bytes as the seed proxy puts them in report_data[0..32): a 20-byte Ethereum address for
    /// ecdsa, a 32-byte public key for ed25519. Null when the address is not of that form.
    /// </summary>
    public byte[]? SigningIdentityBytes()
    {
        var text = SigningAddress.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? SigningAddress[2..] : SigningAddress;
        var expectedHex = SigningAlgo switch
        {
            "ecdsa" => 40,
            "ed25519" => 64,
            _ => -1,
        };
        if (text.Length != expectedHex || !text.All(char.IsAsciiHexDigit))
        {
            return null;
        }

        return Convert.FromHexString(text);
    }

    private static string? ReadPublishedCompose(JsonElement info)
    {
        if (!info.TryGetProperty("tcb_info", out var tcb))
        {
            return null;
        }

        if (tcb.ValueKind == JsonValueKind.String)
        {
            try
            {
                using var inner = JsonDocument.Parse(tcb.GetString()!, new JsonDocumentOptions { MaxDepth = 64 });
                return inner.RootElement.ValueKind == JsonValueKind.Object ? OptionalString(inner.RootElement, "app_compose") : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }

        return tcb.ValueKind == JsonValueKind.Object ? OptionalString(tcb, "app_compose") : null;
    }

    private static string RequiredString(JsonElement root, string name) =>
        OptionalString(root, name) ?? throw Malformed($"the report has no string member '{name}'");

    private static string? OptionalString(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static byte[] Hex(string text, string what)
    {
        var t = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        if (t.Length % 2 != 0 || !t.All(char.IsAsciiHexDigit))
        {
            throw Malformed($"{what} is not hex");
        }

        return Convert.FromHexString(t);
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.ReportMalformed, message);
}
