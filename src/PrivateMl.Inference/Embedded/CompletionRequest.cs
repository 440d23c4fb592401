using System.Text.Json;

namespace PrivateMl.Inference.Embedded;

public enum CompletionKind
{
    Chat,
    Text,
}

/// <summary>A chat message after validation: role and its text (content parts joined).</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// A validated /v1/chat/completions or /v1/completions request. Parsing follows the OpenAI API: unknown fields are
/// ignored, known ones must have the documented type and range, and anything else is a 400 naming the field.
/// </summary>
public sealed record CompletionRequest
{
    public const int MaxStopSequences = 4;

    public required CompletionKind Kind { get; init; }

    public required string Model { get; init; }

    public IReadOnlyList<ChatMessage> Messages { get; init; } = [];

    public string Prompt { get; init; } = "";

    public int? MaxTokens { get; init; }

    public float Temperature { get; init; } = 1f;

    public float TopP { get; init; } = 1f;

    public float FrequencyPenalty { get; init; }

    public float PresencePenalty { get; init; }

    public long? Seed { get; init; }

    public IReadOnlyList<string> Stop { get; init; } = [];

    public bool Stream { get; init; }

    public bool IncludeUsage { get; init; }

    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>Parses and validates; throws <see cref="OpenAiErrorException"/> with a 400 for anything malformed.</summary>
    internal static CompletionRequest Parse(CompletionKind kind, ReadOnlyMemory<byte> body)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException)
        {
            throw Fail("We could not parse the JSON body of your request. The body must be a JSON object.");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Fail("The request body must be a JSON object.");
            }

            var model = root.TryGetProperty("model", out var m) ? m : default;
            if (model.ValueKind != JsonValueKind.String || model.GetString() is not { Length: > 0 } modelName)
            {
                throw Fail("You must provide a model parameter (a string).", "model");
            }

            if (Optional(root, "n") is { } n && (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out var nv) || nv != 1))
            {
                throw Fail("This engine generates one choice per request: n must be 1.", "n");
            }

            var maxName = kind == CompletionKind.Chat && Optional(root, "max_completion_tokens") is not null ? "max_completion_tokens" : "max_tokens";
            int? maxTokens = null;
            if (Optional(root, maxName) is { } mt)
            {
                if (mt.ValueKind != JsonValueKind.Number || !mt.TryGetInt32(out var v) || v < 1)
                {
                    throw Fail($"{maxName} must be an integer of at least 1.", maxName, "invalid_value");
                }

                maxTokens = v;
            }

            var stream = Bool(root, "stream") ?? false;
            var includeUsage = false;
            if (Optional(root, "stream_options") is { } so)
            {
                if (so.ValueKind != JsonValueKind.Object)
                {
                    throw Fail("stream_options must be an object.", "stream_options");
                }

                includeUsage = Bool(so, "include_usage", "stream_options.include_usage") ?? false;
            }

            return new CompletionRequest
            {
                Kind = kind,
                Model = modelName,
                Messages = kind == CompletionKind.Chat ? ParseMessages(root) : [],
                Prompt = kind == CompletionKind.Text ? ParsePrompt(root) : "",
                MaxTokens = maxTokens,
                Temperature = Number(root, "temperature", 0, 2) ?? 1f,
                TopP = Number(root, "top_p", 0, 1, exclusiveMin: true) ?? 1f,
                FrequencyPenalty = Number(root, "frequency_penalty", -2, 2) ?? 0f,
                PresencePenalty = Number(root, "presence_penalty", -2, 2) ?? 0f,
                Seed = ParseSeed(root),
                Stop = ParseStop(root),
                Stream = stream,
                IncludeUsage = includeUsage,
            };
        }
    }

    private static List<ChatMessage> ParseMessages(JsonElement root)
    {
        if (Optional(root, "messages") is not { ValueKind: JsonValueKind.Array } messages || messages.GetArrayLength() == 0)
        {
            throw Fail("messages must be a non-empty array of {role, content} objects.", "messages");
        }

        var result = new List<ChatMessage>();
        var i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var at = $"messages[{i++}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw Fail($"{at} must be an object.", at);
            }

            if (Optional(message, "role") is not { ValueKind: JsonValueKind.String } role || !Roles.Contains(role.GetString()!))
            {
                throw Fail($"{at}.role must be one of {string.Join(", ", Roles.Order())}.", $"{at}.role");
            }

            var roleName = role.GetString()!;
            var content = Optional(message, "content");
            string text;
            switch (content?.ValueKind)
            {
                case JsonValueKind.String:
                    text = content.Value.GetString()!;
                    break;
                case JsonValueKind.Array:
                    text = JoinParts(content.Value, $"{at}.content");
                    break;
                case null or JsonValueKind.Null when roleName == "assistant":
                    text = "";
                    break;
                default:
                    throw Fail($"{at}.content must be a string or an array of text parts.", $"{at}.content");
            }

            result.Add(new ChatMessage(roleName, text));
        }

        return result;
    }

    private static string JoinParts(JsonElement parts, string at)
    {
        var text = new System.Text.StringBuilder();
        foreach (var part in parts.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object
                || Optional(part, "type") is not { ValueKind: JsonValueKind.String } type
                || type.GetString() != "text"
                || Optional(part, "text") is not { ValueKind: JsonValueKind.String } value)
            {
                throw Fail($"{at}: only {{\"type\":\"text\",\"text\":...}} parts are supported.", at);
            }

            text.Append(value.GetString());
        }

        return text.ToString();
    }

    private static string ParsePrompt(JsonElement root)
    {
        switch (Optional(root, "prompt"))
        {
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString()!;
            case { ValueKind: JsonValueKind.Array } a when a.GetArrayLength() == 1 && a[0].ValueKind == JsonValueKind.String:
                return a[0].GetString()!;
            case { ValueKind: JsonValueKind.Array }:
                throw Fail("This engine takes one prompt per request (a string, or an array of one string).", "prompt");
            default:
                throw Fail("prompt must be a string.", "prompt");
        }
    }

    private static long? ParseSeed(JsonElement root)
    {
        if (Optional(root, "seed") is not { } seed)
        {
            return null;
        }

        if (seed.ValueKind != JsonValueKind.Number || !seed.TryGetInt64(out var value))
        {
            throw Fail("seed must be an integer.", "seed");
        }

        return value;
    }

    private static List<string> ParseStop(JsonElement root)
    {
        switch (Optional(root, "stop"))
        {
            case null:
                return [];
            case { ValueKind: JsonValueKind.String } s when s.GetString()!.Length > 0:
                return [s.GetString()!];
            case { ValueKind: JsonValueKind.Array } a when a.GetArrayLength() <= MaxStopSequences
                && a.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String && e.GetString()!.Length > 0):
                return a.EnumerateArray().Select(e => e.GetString()!).ToList();
            default:
                throw Fail($"stop must be a non-empty string or an array of up to {MaxStopSequences} non-empty strings.", "stop");
        }
    }

    /// <summary>The property, or null when absent or JSON null (OpenAI clients send null for "not set").</summary>
    private static JsonElement? Optional(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static bool? Bool(JsonElement obj, string name, string? param = null) => Optional(obj, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw Fail($"{param ?? name} must be a boolean.", param ?? name),
    };

    private static float? Number(JsonElement obj, string name, double min, double max, bool exclusiveMin = false)
    {
        if (Optional(obj, name) is not { } v)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || d > max || d < min || (exclusiveMin && d <= min))
        {
            throw Fail($"{name} must be a number in {(exclusiveMin ? "(" : "[")}{min}, {max}].", name, "invalid_value");
        }

        return (float)d;
    }

    private static OpenAiErrorException Fail(string message, string? param = null, string? code = null) =>
        new(OpenAiError.Invalid(message, param, code));
}
