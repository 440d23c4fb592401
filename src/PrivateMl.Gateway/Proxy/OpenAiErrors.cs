using System.Text.Json;
using Microsoft.AspNetCore.Http;
using PrivateMl.Gateway.E2ee;

namespace PrivateMl.Gateway.Proxy;

/// <summary>Errors in the OpenAI shape: <c>{"error":{"message","type","param","code"}}</c>.</summary>
internal static class OpenAiErrors
{
    public static byte[] Body(string message, string type, string? code = null)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WritePropertyName("error");
            w.WriteStartObject();
            w.WriteString("message", message);
            w.WriteString("type", type);
            w.WriteNull("param");
            if (code is null)
            {
                w.WriteNull("code");
            }
            else
            {
                w.WriteString("code", code);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        return buffer.ToArray();
    }

    public static async Task WriteAsync(HttpContext context, int status, string message, string type, string? code = null)
    {
        if (context.Response.HasStarted)
        {
            context.Abort();
            return;
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var body = Body(message, type, code);
        context.Response.ContentLength = body.Length;
        if (context.Features.Get<IE2eeExchange>() is { } exchange)
        {
            body = exchange.SealError(body, context.Response, fromModel: false); // EHBP seals errors once its context exists
        }

        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>
    /// An upstream error body relayed in the OpenAI shape: an OpenAI-shaped body passes unchanged; vLLM's flat
    /// <c>{"object":"error","message":…}</c> and plain text are wrapped.
    /// </summary>
    public static byte[] FromUpstream(int status, ReadOnlySpan<byte> body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray());
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                if (doc.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
                {
                    return body.ToArray();
                }

                if (doc.RootElement.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String)
                {
                    var type = doc.RootElement.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : TypeFor(status);
                    return Body(message.GetString()!, type);
                }
            }
        }
        catch (JsonException)
        {
        }

        var text = System.Text.Encoding.UTF8.GetString(body[..Math.Min(body.Length, 1024)]).Trim();
        return Body(text.Length == 0 ? $"the upstream answered {status}" : $"the upstream answered {status}: {text}", TypeFor(status));
    }

    private static string TypeFor(int status) => status switch
    {
        400 or 404 or 413 or 422 => "invalid_request_error",
        401 or 403 => "authentication_error",
        429 => "rate_limit_error",
        _ => "upstream_error",
    };
}
