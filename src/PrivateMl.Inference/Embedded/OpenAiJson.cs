using System.Text;
using System.Text.Json;

namespace PrivateMl.Inference.Embedded;

/// <summary>The exact OpenAI response shapes the engine writes (chat.completion, chat.completion.chunk, text_completion, list).</summary>
internal static class OpenAiJson
{
    public sealed record Header(CompletionKind Kind, string Id, long Created, string Model)
    {
        public string Object => Kind == CompletionKind.Chat ? "chat.completion" : "text_completion";

        public string ChunkObject => Kind == CompletionKind.Chat ? "chat.completion.chunk" : "text_completion";
    }

    public readonly record struct Usage(int PromptTokens, int CompletionTokens);

    public static byte[] Completion(Header h, string text, string finishReason, Usage usage) => Write(w =>
    {
        Start(w, h, h.Object);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (h.Kind == CompletionKind.Chat)
        {
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", text);
        }

        w.WriteNull("logprobs");
        w.WriteString("finish_reason", finishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    });

    /// <summary>One streamed chunk: for chat a <c>delta</c> (role on the first, content after, empty on the last).</summary>
    public static byte[] Chunk(Header h, string? role, string? content, string? finishReason) => Sse(w =>
    {
        Start(w, h, h.ChunkObject);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (h.Kind == CompletionKind.Chat)
        {
            w.WriteStartObject("delta");
            if (role is not null)
            {
                w.WriteString("role", role);
            }

            if (content is not null)
            {
                w.WriteString("content", content);
            }

            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", content ?? "");
        }

        w.WriteNull("logprobs");
        if (finishReason is null)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", finishReason);
        }

        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    });

    /// <summary>The final chunk sent when <c>stream_options.include_usage</c> is set: no choices, only usage.</summary>
    public static byte[] UsageChunk(Header h, Usage usage) => Sse(w =>
    {
        Start(w, h, h.ChunkObject);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    });

    public static byte[] ErrorEvent(OpenAiError error) => Sse(error.WriteTo);

    public static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static byte[] Models(string id, long created, string ownedBy, int maxModelLength) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "model");
        w.WriteNumber("created", created);
        w.WriteString("owned_by", ownedBy);
        w.WriteNumber("max_model_len", maxModelLength);
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    });

    private static void Start(Utf8JsonWriter w, Header h, string objectName)
    {
        w.WriteStartObject();
        w.WriteString("id", h.Id);
        w.WriteString("object", objectName);
        w.WriteNumber("created", h.Created);
        w.WriteString("model", h.Model);
    }

    private static void WriteUsage(Utf8JsonWriter w, Usage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.PromptTokens + usage.CompletionTokens);
        w.WriteEndObject();
    }

    private static byte[] Write(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, OpenAiError.WriterOptions))
        {
            body(w);
        }

        return buffer.ToArray();
    }

    private static byte[] Sse(Action<Utf8JsonWriter> body)
    {
        var json = Write(body);
        var framed = new byte[6 + json.Length + 2];
        Encoding.ASCII.GetBytes("data: ").CopyTo(framed, 0);
        json.CopyTo(framed, 6);
        framed[^2] = (byte)'\n';
        framed[^1] = (byte)'\n';
        return framed;
    }
}
