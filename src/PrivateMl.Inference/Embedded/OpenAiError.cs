using System.Text.Encodings.Web;
using System.Text.Json;

namespace PrivateMl.Inference.Embedded;

/// <summary>
/// An OpenAI-shaped error: HTTP status plus <c>{"error":{"message","type","param","code"}}</c>. A request that fails
/// validation gets one of these; the engine itself keeps serving.
/// </summary>
public sealed record OpenAiError(int Status, string Message, string Type, string? Param = null, string? Code = null)
{
    internal static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static OpenAiError Invalid(string message, string? param = null, string? code = null) =>
        new(400, message, "invalid_request_error", param, code);

    public static OpenAiError ModelNotFound(string model) =>
        new(404, $"The model `{model}` does not exist or you do not have access to it.", "invalid_request_error", "model", "model_not_found");

    public static OpenAiError Busy(int concurrency, int queue) =>
        new(429, $"The engine is at capacity ({concurrency} running, {queue} queued); retry shortly.", "requests", null, "rate_limit_exceeded");

    public static OpenAiError NotFound(string path) =>
        new(404, $"Unknown route {path}.", "invalid_request_error", null, "unknown_url");

    public static OpenAiError MethodNotAllowed(string method, string path) =>
        new(405, $"{method} is not allowed on {path}.", "invalid_request_error", null, "method_not_allowed");

    public byte[] ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            WriteTo(w);
        }

        return buffer.ToArray();
    }

    internal void WriteTo(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", Message);
        w.WriteString("type", Type);
        WriteNullable(w, "param", Param);
        WriteNullable(w, "code", Code);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, string? value)
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
}

/// <summary>Thrown inside request parsing to short-circuit to an error response; never escapes the engine.</summary>
internal sealed class OpenAiErrorException(OpenAiError error) : Exception(error.Message)
{
    public OpenAiError Error { get; } = error;
}
