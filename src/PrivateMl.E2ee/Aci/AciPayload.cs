using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrivateMl.E2ee.Aci;

/// <summary>The per-request E2EE v2 context both sides build from the five headers and the request's clear <c>model</c>.</summary>
/// <param name="Suite">The suite of the selected service key.</param>
/// <param name="Model">The request's top-level <c>model</c> string, byte-exact.</param>
/// <param name="Nonce">The <c>X-E2EE-Nonce</c> header as sent (case preserved, as the AAD uses it).</param>
/// <param name="Timestamp">The <c>X-E2EE-Timestamp</c> header value (Unix seconds).</param>
public sealed record AciExchangeContext(AciSuite Suite, string Model, string Nonce, long Timestamp)
{
    public string Algo => Suite.Algo();
}

/// <summary>
/// Which fields of a request or response body E2EE v2 encrypts, and doing it (e2ee-v2.md §5). Paths join member
/// names and array indexes with <c>.</c>; in <c>choices</c> and <c>data</c> the index is the entry's <c>index</c>
/// member when present. Bodies are <see cref="JsonObject"/>s so the original member order survives (the restored body
/// is compact JSON in the received order).
/// </summary>
public static class AciPayload
{
    public const string ChatEndpoint = "/v1/chat/completions";
    public const string CompletionsEndpoint = "/v1/completions";

    /// <summary>Serialiser options for restored bodies: compact, no escaping beyond what JSON needs.</summary>
    public static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = false };

    private static readonly string[] ChatMessageFields = ["content", "reasoning", "reasoning_content"];
    private static readonly string[] ChatDeltaFields = ["content", "reasoning", "reasoning_content"];

    /// <summary>True for the endpoints E2EE v2 defines (and this gateway serves).</summary>
    public static bool IsSupportedEndpoint(string path) => path is ChatEndpoint or CompletionsEndpoint;

    /// <summary>Parses a JSON object body with a top-level string <c>model</c>; null when it is not one.</summary>
    public static JsonObject? ParseBody(ReadOnlySpan<byte> json, out string? model)
    {
        model = null;
        try
        {
            var node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject;
            if (node?["model"] is JsonValue m && m.GetValueKind() == JsonValueKind.String)
            {
                model = m.GetValue<string>();
                return node;
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }

    /// <summary>Compact UTF-8 of a body, members in their order.</summary>
    public static byte[] Serialize(JsonNode node) => JsonSerializer.SerializeToUtf8Bytes(node, Compact);

    /// <summary>Client: encrypts every request field in place to the service key; returns how many.</summary>
    public static int EncryptRequest(JsonObject body, string endpoint, AciExchangeContext context, ReadOnlySpan<byte> servicePublicKey, RandomNumberGenerator? random = null)
    {
        var key = servicePublicKey.ToArray();
        return VisitRequest(body, endpoint, (path, value) =>
            AciFieldCipher.Seal(context.Suite, key, Encoding.UTF8.GetBytes(value), AciAad.Request(context.Algo, context.Model, path, context.Nonce, context.Timestamp), random), encryptStructured: true);
    }

    /// <summary>
    /// Service: decrypts every request field in place. A field that does not decrypt, or a body with no encrypted field,
    /// is <see cref="AciE2eeError.DecryptionFailed"/>. A whole-content plaintext that is a JSON array is restored as
    /// structured content.
    /// </summary>
    public static int DecryptRequest(JsonObject body, string endpoint, AciExchangeContext context, AciPrivateKey serviceKey)
    {
        var count = VisitRequest(body, endpoint, (path, value) =>
            Encoding.UTF8.GetString(AciFieldCipher.Open(serviceKey, value, AciAad.Request(context.Algo, context.Model, path, context.Nonce, context.Timestamp))), encryptStructured: false);
        if (count == 0)
        {
            throw new AciE2eeException(AciE2eeError.DecryptionFailed, "an E2EE v2 request needs at least one encrypted field");
        }

        return count;
    }

    /// <summary>Service: encrypts the generated-content fields of a response body or one SSE chunk to the client key.</summary>
    public static int EncryptResponse(JsonObject body, string endpoint, bool streamChunk, AciExchangeContext context, ReadOnlySpan<byte> clientPublicKey, RandomNumberGenerator? random = null)
    {
        var key = clientPublicKey.ToArray();
        var id = body["id"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : string.Empty;
        return VisitResponse(body, endpoint, streamChunk, (path, value) =>
            AciFieldCipher.Seal(context.Suite, key, Encoding.UTF8.GetBytes(value), AciAad.Response(context.Algo, context.Model, id, path, context.Nonce, context.Timestamp), random), dropEmptyDelta: true);
    }

    /// <summary>
    /// Client: decrypts the generated-content fields in place. A content field that does not decrypt is
    /// <see cref="AciE2eeError.DecryptionFailed"/>; one that is plaintext where ciphertext belongs is
    /// <see cref="AciE2eeError.ResponseNotEncrypted"/> (a stripped or substituted answer).
    /// </summary>
    public static int DecryptResponse(JsonObject body, string endpoint, bool streamChunk, AciExchangeContext context, AciPrivateKey clientKey)
    {
        var id = body["id"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : string.Empty;
        var minimum = 2 * (clientKey.Suite.PublicKeyBytes() + AciFieldCipher.NonceBytes + AciFieldCipher.TagBytes);
        return VisitResponse(body, endpoint, streamChunk, (path, value) =>
        {
            if (value.Length == 0)
            {
                return value;
            }

            if (value.Length < minimum || !value.All(Uri.IsHexDigit))
            {
                throw new AciE2eeException(AciE2eeError.ResponseNotEncrypted, $"the response field {path} is not encrypted: refusing a plaintext answer to an E2EE request");
            }

            return Encoding.UTF8.GetString(AciFieldCipher.Open(clientKey, value, AciAad.Response(context.Algo, context.Model, id, path, context.Nonce, context.Timestamp)));
        }, dropEmptyDelta: false);
    }

    private static int VisitRequest(JsonObject body, string endpoint, Func<string, string, string> transform, bool encryptStructured)
    {
        var count = 0;
        if (endpoint == ChatEndpoint)
        {
            if (body["messages"] is not JsonArray messages)
            {
                return 0;
            }

            for (var m = 0; m < messages.Count; m++)
            {
                if (messages[m] is not JsonObject message)
                {
                    continue;
                }

                var basePath = "messages." + m.ToString(CultureInfo.InvariantCulture) + ".content";
                switch (message["content"])
                {
                    case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                        var text = transform(basePath, value.GetValue<string>());
                        message["content"] = !encryptStructured && TryParseArray(text) is { } restored ? restored : JsonValue.Create(text);
                        count++;
                        break;
                    case JsonArray parts:
                        for (var c = 0; c < parts.Count; c++)
                        {
                            if (parts[c] is not JsonObject part)
                            {
                                continue;
                            }

                            var partPath = basePath + "." + c.ToString(CultureInfo.InvariantCulture);
                            count += Replace(part, "text", partPath + ".text", transform);
                            if (part["image_url"] is JsonObject image)
                            {
                                count += Replace(image, "url", partPath + ".image_url.url", transform);
                            }

                            if (part["input_audio"] is JsonObject audio)
                            {
                                count += Replace(audio, "data", partPath + ".input_audio.data", transform);
                            }
                        }

                        break;
                }
            }
        }
        else if (endpoint == CompletionsEndpoint)
        {
            switch (body["prompt"])
            {
                case JsonValue:
                    count += Replace(body, "prompt", "prompt", transform);
                    break;
                case JsonArray prompts:
                    for (var i = 0; i < prompts.Count; i++)
                    {
                        if (prompts[i] is JsonValue p && p.GetValueKind() == JsonValueKind.String)
                        {
                            prompts[i] = JsonValue.Create(transform("prompt." + i.ToString(CultureInfo.InvariantCulture), p.GetValue<string>()));
                            count++;
                        }
                    }

                    break;
            }
        }

        return count;
    }

    private static int VisitResponse(JsonObject body, string endpoint, bool streamChunk, Func<string, string, string> transform, bool dropEmptyDelta)
    {
        if (body["choices"] is not JsonArray choices)
        {
            return 0;
        }

        var count = 0;
        for (var position = 0; position < choices.Count; position++)
        {
            if (choices[position] is not JsonObject choice)
            {
                continue;
            }

            var index = choice["index"] is JsonValue iv && iv.TryGetValue<long>(out var n) ? n : position;
            var basePath = "choices." + index.ToString(CultureInfo.InvariantCulture);
            if (endpoint == CompletionsEndpoint)
            {
                count += Replace(choice, "text", basePath + ".text", transform);
                continue;
            }

            var container = streamChunk ? "delta" : "message";
            if (choice[container] is not JsonObject message)
            {
                continue;
            }

            if (dropEmptyDelta && streamChunk && message["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String && c.GetValue<string>().Length == 0)
            {
                message.Remove("content");
            }

            foreach (var field in streamChunk ? ChatDeltaFields : ChatMessageFields)
            {
                count += Replace(message, field, basePath + "." + container + "." + field, transform);
            }

            if (!streamChunk && message["audio"] is JsonObject audio)
            {
                count += Replace(audio, "data", basePath + ".message.audio.data", transform);
            }
        }

        return count;
    }

    private static int Replace(JsonObject owner, string member, string path, Func<string, string, string> transform)
    {
        if (owner[member] is JsonValue value && value.GetValueKind() == JsonValueKind.String)
        {
            owner[member] = JsonValue.Create(transform(path, value.GetValue<string>()));
            return 1;
        }

        return 0;
    }

    private static JsonArray? TryParseArray(string text)
    {
        if (text.Length == 0 || text[0] != '[')
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonArray;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
