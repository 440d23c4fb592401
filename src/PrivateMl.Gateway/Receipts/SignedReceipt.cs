using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Receipts;

/// <summary>
/// A self-contained receipt for one response: canonical JSON (<see cref="CanonicalJson"/>) with the request and
/// response hashes, the signed text and its EIP-191 signature, both signing keys, the report_data prefixes that bind
/// those keys into an attestation quote, and an Ed25519 <c>signature</c> over the canonical document without it.
/// </summary>
public static class SignedReceipt
{
    public const string Version = "privateml-receipt/1";

    /// <summary>Largest receipt <see cref="Verify"/> parses.</summary>
    public const int MaxReceiptBytes = 64 * 1024;

    internal static string Create(
        GatewaySigningKeys keys,
        string receiptId,
        string? chatId,
        string? model,
        string endpoint,
        DateTimeOffset receivedAt,
        DateTimeOffset completedAt,
        string requestSha256,
        string responseSha256,
        string signatureEcdsa)
    {
        var fields = new ReceiptFields(
            receiptId, chatId, model, endpoint, receivedAt.ToUnixTimeMilliseconds(), completedAt.ToUnixTimeMilliseconds(), requestSha256,
            responseSha256, signatureEcdsa, keys.EcdsaKey.Address, keys.Ed25519Key.Address,
            keys.EcdsaReportDataPrefixHex,
            keys.Ed25519ReportDataPrefixHex);

        // One receipt per signed response: the document is written twice (to sign, then with the signature) into a
        // buffer and writer reused by this thread, so that only the final string is allocated. A fresh
        // ArrayBufferWriter grows by doubling to fit Utf8JsonWriter's worst-case escaping hints and cost ~16 KiB per
        // receipt, most of what a relayed request allocated.
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        var writer = t_writer ??= new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions);
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        WriteTo(writer, fields, null);
        var signature = Convert.ToHexStringLower(keys.Ed25519Key.Sign(buffer.WrittenSpan));
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        WriteTo(writer, fields, signature);
        var receipt = System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
        buffer.ResetWrittenCount();
        writer.Reset(buffer);
        return receipt;
    }

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>
    /// Writes the receipt directly in canonical form (members in ordinal order, as <see cref="CanonicalJson"/> would
    /// order them), with or without its signature; a test checks both agree.
    /// </summary>
    internal static byte[] Write(ReceiptFields f, string? signature)
    {
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var w = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions))
        {
            WriteTo(w, f, signature);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteTo(Utf8JsonWriter w, ReceiptFields f, string? signature)
    {
        {
            w.WriteStartObject();
            NullableString(w, "chat_id", f.ChatId);
            w.WriteNumber("completed_at_ms", f.CompletedAtMs);
            w.WriteString("endpoint", f.Endpoint);
            NullableString(w, "model", f.Model);
            w.WriteString("receipt_id", f.ReceiptId);
            w.WriteNumber("received_at_ms", f.ReceivedAtMs);
            w.WriteStartObject("report_data_prefix");
            w.WriteString("ecdsa", f.EcdsaPrefix);
            w.WriteString("ed25519", f.Ed25519Prefix);
            w.WriteEndObject();
            w.WriteString("request_sha256", f.RequestSha256);
            w.WriteString("response_sha256", f.ResponseSha256);
            if (signature is not null)
            {
                w.WriteString("signature", signature);
            }

            w.WriteString("signature_ecdsa", f.SignatureEcdsa);
            w.WriteString("signed_text", f.RequestSha256 + ":" + f.ResponseSha256);
            w.WriteStartObject("signing_keys");
            w.WriteString("ecdsa_address", f.EcdsaAddress);
            w.WriteString("ed25519_public_key", f.Ed25519PublicKey);
            w.WriteEndObject();
            w.WriteString("version", Version);
            w.WriteEndObject();
        }

        w.Flush();
    }

    private static void NullableString(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    /// <summary>
    /// Verifies a receipt offline: its Ed25519 signature over the canonical document, that the signed text is
    /// <c>request_sha256:response_sha256</c>, that the EIP-191 signature recovers the ECDSA address, and that the
    /// report_data prefixes are the padded keys. With <paramref name="trustedEd25519PublicKey"/> (from a verified
    /// attestation report) the receipt key must equal it; with <paramref name="requestBody"/> /
    /// <paramref name="responseBody"/> the hashes must match those bytes.
    /// </summary>
    public static ReceiptVerification Verify(
        string receiptJson,
        string? trustedEd25519PublicKey = null,
        ReadOnlySpan<byte> requestBody = default,
        ReadOnlySpan<byte> responseBody = default,
        bool checkBodies = false)
    {
        if (receiptJson.Length > MaxReceiptBytes)
        {
            return ReceiptVerification.Fail("the receipt is larger than allowed");
        }

        JsonObject document;
        try
        {
            document = JsonNode.Parse(receiptJson) as JsonObject ?? throw new JsonException();
        }
        catch (JsonException)
        {
            return ReceiptVerification.Fail("the receipt is not a JSON object");
        }

        try
        {
            if (Str(document, "version") != Version)
            {
                return ReceiptVerification.Fail("unknown receipt version");
            }

            var signatureHex = Str(document, "signature");
            document.Remove("signature");
            var keys = document["signing_keys"] as JsonObject ?? throw new FormatException("signing_keys missing");
            var edKeyHex = Str(keys, "ed25519_public_key");
            var ecdsaAddress = Str(keys, "ecdsa_address");
            if (trustedEd25519PublicKey is not null && !string.Equals(trustedEd25519PublicKey, edKeyHex, StringComparison.OrdinalIgnoreCase))
            {
                return ReceiptVerification.Fail("the receipt is signed by another Ed25519 key than the trusted one");
            }

            if (!Ed25519Signer.Verify(Convert.FromHexString(edKeyHex), CanonicalJson.Serialize(document), Convert.FromHexString(signatureHex)))
            {
                return ReceiptVerification.Fail("the Ed25519 signature does not verify");
            }

            var requestHash = Str(document, "request_sha256");
            var responseHash = Str(document, "response_sha256");
            var text = Str(document, "signed_text");
            if (text != requestHash + ":" + responseHash)
            {
                return ReceiptVerification.Fail("signed_text is not request_sha256:response_sha256");
            }

            var recovered = EthereumSigner.RecoverAddress(text, Str(document, "signature_ecdsa"));
            if (recovered is null || !string.Equals(recovered, ecdsaAddress, StringComparison.OrdinalIgnoreCase))
            {
                return ReceiptVerification.Fail("the ECDSA signature does not recover the ECDSA address");
            }

            var prefixes = document["report_data_prefix"] as JsonObject ?? throw new FormatException("report_data_prefix missing");
            var expectedEcdsa = Convert.FromHexString(ecdsaAddress[2..]).Concat(new byte[12]).ToArray();
            var expectedEd = Convert.FromHexString(edKeyHex);
            if (!Convert.FromHexString(Str(prefixes, "ecdsa")).AsSpan().SequenceEqual(expectedEcdsa)
                || !Convert.FromHexString(Str(prefixes, "ed25519")).AsSpan().SequenceEqual(expectedEd))
            {
                return ReceiptVerification.Fail("report_data_prefix does not bind the signing keys");
            }

            if (checkBodies)
            {
                if (Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(requestBody)) != requestHash)
                {
                    return ReceiptVerification.Fail("request_sha256 is not the hash of the request body");
                }

                if (Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(responseBody)) != responseHash)
                {
                    return ReceiptVerification.Fail("response_sha256 is not the hash of the response body");
                }
            }

            return new ReceiptVerification(true, null, Str(document, "receipt_id"), ecdsaAddress, edKeyHex);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException)
        {
            return ReceiptVerification.Fail("the receipt is malformed: " + e.Message);
        }
    }

    private static string Str(JsonObject obj, string name) =>
        obj[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new FormatException($"'{name}' missing");
}

internal sealed record ReceiptFields(
    string ReceiptId,
    string? ChatId,
    string? Model,
    string Endpoint,
    long ReceivedAtMs,
    long CompletedAtMs,
    string RequestSha256,
    string ResponseSha256,
    string SignatureEcdsa,
    string EcdsaAddress,
    string Ed25519PublicKey,
    string EcdsaPrefix,
    string Ed25519Prefix);

/// <summary>The outcome of <see cref="SignedReceipt.Verify"/>.</summary>
public sealed record ReceiptVerification(bool Valid, string? Reason, string? ReceiptId, string? EcdsaAddress, string? Ed25519PublicKey)
{
    internal static ReceiptVerification Fail(string reason) => new(false, reason, null, null, null);
}
