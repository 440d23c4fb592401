using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using NSec.Cryptography;
using PrivateMl.Attestation.Verification;
using static PrivateMl.Client.SignatureEncoding;
using SHA256 = System.Security.Cryptography.SHA256;

namespace PrivateMl.Client;

/// <summary>
/// Verifies a gateway receipt (<c>privateml-receipt/1</c>, from <c>GET /v1/receipt/{id}</c>) offline: the Ed25519
/// signature over the canonical document without <c>signature</c> (compact, members sorted by ordinal name, minimal
/// escaping, integers only), <c>signed_text = request_sha256:response_sha256</c>, the EIP-191 signature recovering
/// <c>signing_keys.ecdsa_address</c>, the report_data prefixes being the padded keys, and — when given — that the
/// keys are the ones attested and the hashes are those of the bytes sent and received. Never throws for hostile input.
/// </summary>
public static class ReceiptVerifier
{
    public const string Version = "privateml-receipt/1";
    public const int MaxReceiptBytes = 64 * 1024;

    public const string FormatCheck = "receipt.format";
    public const string SignatureCheck = "receipt.signature";
    public const string TextCheck = "receipt.signed-text";
    public const string EcdsaCheck = "receipt.ecdsa-signature";
    public const string KeyBindingCheck = "receipt.key-binding";
    public const string AttestedKeyCheck = "receipt.attested-key";
    public const string RequestCheck = "receipt.request-hash";
    public const string ResponseCheck = "receipt.response-hash";

    /// <param name="receiptJson">The receipt as saved.</param>
    /// <param name="attestedAddress">The ECDSA address or Ed25519 public key (hex) attested by a verified report; null: not compared.</param>
    /// <param name="requestBody">The exact request bytes sent, or null.</param>
    /// <param name="responseBytes">The exact response bytes received (SSE included), or null.</param>
    public static IReadOnlyList<CheckResult> Verify(ReadOnlySpan<byte> receiptJson, string? attestedAddress = null, byte[]? requestBody = null, byte[]? responseBytes = null)
    {
        if (receiptJson.Length > MaxReceiptBytes)
        {
            return [CheckResult.Fail(FormatCheck, ErrorCode.ReceiptInvalid, $"the receipt is {receiptJson.Length} bytes, more than {MaxReceiptBytes}")];
        }

        JsonObject document;
        try
        {
            document = JsonNode.Parse(receiptJson, documentOptions: new JsonDocumentOptions { MaxDepth = 16 }) as JsonObject
                ?? throw new JsonException("not an object");
        }
        catch (JsonException e)
        {
            return [CheckResult.Fail(FormatCheck, ErrorCode.ReceiptInvalid, "the receipt is not a JSON object: " + e.Message)];
        }

        var checks = new List<CheckResult>();
        try
        {
            if (Str(document, "version") != Version)
            {
                return [CheckResult.Fail(FormatCheck, ErrorCode.ReceiptInvalid, $"not a {Version} receipt")];
            }

            var signatureHex = Str(document, "signature");
            var unsigned = document.DeepClone().AsObject();
            unsigned.Remove("signature");
            var keys = document["signing_keys"] as JsonObject ?? throw new FormatException("signing_keys is missing");
            var edKey = Str(keys, "ed25519_public_key");
            var ecdsaAddress = Str(keys, "ecdsa_address");
            var receiptId = Str(document, "receipt_id");
            checks.Add(CheckResult.Pass(FormatCheck, $"receipt {receiptId} for {(document["model"] is JsonValue m && m.GetValueKind() == JsonValueKind.String ? m.GetValue<string>() : "?")} at {(document["endpoint"] as JsonValue)?.ToString() ?? "?"}"));

            var signed = TryHex(edKey, 32, out var pub) && TryHex(signatureHex, 64, out var sig) && VerifyEd25519(pub, Canonical(unsigned), sig);
            checks.Add(signed
                ? CheckResult.Pass(SignatureCheck, $"the Ed25519 signature over the canonical receipt verifies under {edKey}")
                : CheckResult.Fail(SignatureCheck, ErrorCode.ReceiptInvalid, "TAMPERED or forged: the Ed25519 signature does not verify over the receipt as it is"));

            var requestHash = Str(document, "request_sha256");
            var responseHash = Str(document, "response_sha256");
            var text = Str(document, "signed_text");
            checks.Add(text == requestHash + ":" + responseHash
                ? CheckResult.Pass(TextCheck, "signed_text is request_sha256:response_sha256")
                : CheckResult.Fail(TextCheck, ErrorCode.ReceiptInvalid, "signed_text is not request_sha256:response_sha256"));

            var recovered = SignedResponseVerifier.RecoverEthereumAddress(System.Text.Encoding.UTF8.GetBytes(text), Str(document, "signature_ecdsa"));
            checks.Add(recovered is not null && string.Equals(recovered, ecdsaAddress, StringComparison.OrdinalIgnoreCase)
                ? CheckResult.Pass(EcdsaCheck, $"the EIP-191 signature over signed_text recovers {ecdsaAddress}")
                : CheckResult.Fail(EcdsaCheck, ErrorCode.ResponseSignatureInvalid, $"the EIP-191 signature recovers {recovered ?? "nothing"}, not {ecdsaAddress}"));

            var prefixes = document["report_data_prefix"] as JsonObject ?? throw new FormatException("report_data_prefix is missing");
            var ecdsaBytes = TryHex(ecdsaAddress, 20, out var a) ? a : [];
            var wantEcdsa = Convert.ToHexStringLower([.. ecdsaBytes, .. new byte[32 - Math.Min(32, ecdsaBytes.Length)]]);
            var bound = ecdsaBytes.Length == 20
                && string.Equals(Str(prefixes, "ecdsa"), wantEcdsa, StringComparison.OrdinalIgnoreCase)
                && string.Equals(Str(prefixes, "ed25519"), edKey, StringComparison.OrdinalIgnoreCase);
            checks.Add(bound
                ? CheckResult.Pass(KeyBindingCheck, "the report_data prefixes are the padded signing keys")
                : CheckResult.Fail(KeyBindingCheck, ErrorCode.SigningKeyNotBound, "the report_data prefixes are not the padded signing keys"));

            if (attestedAddress is null)
            {
                checks.Add(CheckResult.Skip(AttestedKeyCheck, "no attested key given: the receipt is only self-consistent, not tied to an attested node"));
            }
            else
            {
                var match = string.Equals(Strip0x(attestedAddress), Strip0x(ecdsaAddress), StringComparison.OrdinalIgnoreCase)
                    || string.Equals(Strip0x(attestedAddress), Strip0x(edKey), StringComparison.OrdinalIgnoreCase);
                checks.Add(match
                    ? CheckResult.Pass(AttestedKeyCheck, $"the receipt's keys include the attested {attestedAddress}")
                    : CheckResult.Fail(AttestedKeyCheck, ErrorCode.SignerNotAttested, $"the receipt is signed by {ecdsaAddress} / {edKey}, not the attested {attestedAddress}"));
            }

            checks.Add(BodyCheck(RequestCheck, "request body sent", requestHash, requestBody));
            checks.Add(BodyCheck(ResponseCheck, "response bytes received", responseHash, responseBytes));
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException)
        {
            checks.Add(CheckResult.Fail(FormatCheck, ErrorCode.ReceiptInvalid, "the receipt is malformed: " + e.Message));
        }

        return checks;
    }

    /// <summary>The canonical bytes the gateway signs.</summary>
    public static byte[] Canonical(JsonNode? node)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            Write(w, node, 0);
        }

        return buffer.ToArray();
    }

    private static void Write(Utf8JsonWriter w, JsonNode? node, int depth)
    {
        if (depth > 16)
        {
            throw new FormatException("the receipt is nested too deeply");
        }

        switch (node)
        {
            case null:
                w.WriteNullValue();
                break;
            case JsonObject o:
                w.WriteStartObject();
                foreach (var (name, value) in o.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    w.WritePropertyName(name);
                    Write(w, value, depth + 1);
                }

                w.WriteEndObject();
                break;
            case JsonArray array:
                w.WriteStartArray();
                foreach (var item in array)
                {
                    Write(w, item, depth + 1);
                }

                w.WriteEndArray();
                break;
            case JsonValue v:
                switch (v.GetValueKind())
                {
                    case JsonValueKind.String:
                        w.WriteStringValue(v.GetValue<string>());
                        break;
                    case JsonValueKind.Number when v.TryGetValue<long>(out var l):
                        w.WriteNumberValue(l);
                        break;
                    case JsonValueKind.Number when v.TryGetValue<JsonElement>(out var e) && e.TryGetInt64(out var l2):
                        w.WriteNumberValue(l2);
                        break;
                    case JsonValueKind.Number:
                        throw new FormatException("receipts hold integers only");
                    case JsonValueKind.True:
                        w.WriteBooleanValue(true);
                        break;
                    case JsonValueKind.False:
                        w.WriteBooleanValue(false);
                        break;
                    default:
                        w.WriteNullValue();
                        break;
                }

                break;
        }
    }

    private static CheckResult BodyCheck(string name, string what, string signedHash, byte[]? body)
    {
        if (body is null)
        {
            return CheckResult.Skip(name, $"the {what} were not given");
        }

        var actual = Convert.ToHexStringLower(SHA256.HashData(body));
        return string.Equals(actual, signedHash, StringComparison.OrdinalIgnoreCase)
            ? CheckResult.Pass(name, $"the receipt's hash is SHA-256 of the {what}")
            : CheckResult.Fail(name, ErrorCode.ResponseHashMismatch, $"TAMPERED: the {what} hash to {actual}, the receipt says {signedHash}");
    }

    private static string Str(JsonObject obj, string name) =>
        obj[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new FormatException($"'{name}' is missing");
}
