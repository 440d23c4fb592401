using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace PrivateMl.Testing;

/// <summary>
/// A real OpenAI-compatible HTTP server on loopback (Kestrel). The request's <c>model</c> picks its behaviour:
/// <c>fault-500</c>, <c>reset</c> (breaks the connection mid-body, streaming or not), <c>slow</c> (pauses between events),
/// <c>late</c> (streams: the headers at once, the first event after a pause), <c>batched</c> (all SSE events in one write), <c>split</c> (every event split across two writes), <c>no-done</c>
/// (stream ends without [DONE]), <c>pretty</c> (indented non-streaming JSON), <c>large</c> (a 4 KiB non-streaming answer); anything else answers normally.
/// Streams send <see cref="Tokens"/> content events, a final event with usage, then <c>data: [DONE]</c>.
/// </summary>
public sealed class FakeUpstream : IAsyncDisposable
{
    public const int Tokens = 8;
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private WebApplication _app = null!;
    private int _counter;

    private FakeUpstream()
    {
    }

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The exact request bodies received, by response id.</summary>
    public ConcurrentDictionary<string, byte[]> Received { get; } = new();

    /// <summary>Released by tests that hold a <c>slow</c> stream open.</summary>
    public TimeSpan SlowDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>A <c>gated</c> stream sends its first event, then waits for this before the rest.</summary>
    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<FakeUpstream> StartAsync()
    {
        var upstream = new FakeUpstream();
        upstream._app = await LoopbackServer.StartAsync(app =>
        {
            app.MapPost("/v1/chat/completions", context => upstream.CompleteAsync(context, chat: true));
            app.MapPost("/v1/completions", context => upstream.CompleteAsync(context, chat: false));
            app.MapGet("/v1/models", () => Results.Text("{\"object\":\"list\",\"data\":[{\"id\":\"test-model\",\"object\":\"model\",\"owned_by\":\"fake\"}]}", "application/json"));
            app.MapGet("/metrics", () => Results.Text("# TYPE vllm_fake_requests counter\nvllm_fake_requests 7\n", "text/plain"));
        });
        upstream.BaseAddress = upstream._app.BaseAddress();
        return upstream;
    }

    private async Task CompleteAsync(HttpContext context, bool chat)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        var body = buffer.ToArray();
        using var doc = JsonDocument.Parse(body);
        var model = doc.RootElement.GetProperty("model").GetString()!;
        var stream = doc.RootElement.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        var id = (chat ? "chatcmpl-" : "cmpl-") + Interlocked.Increment(ref _counter) + "-" + Guid.NewGuid().ToString("N")[..8];
        Received[id] = body;

        if (model == "fault-500")
        {
            context.Response.StatusCode = 500;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"object\":\"error\",\"message\":\"boom in the model\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}");
            return;
        }

        if (!stream)
        {
            var content = model == "large" ? new string('a', 4096) : "hello there";
            var json = chat
                ? $"{{\"id\":\"{id}\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{content}\"}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}}}"
                : $"{{\"id\":\"{id}\",\"object\":\"text_completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"text\":\"{content}\",\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}}}";
            if (model == "pretty")
            {
                using var parsed = JsonDocument.Parse(json);
                json = JsonSerializer.Serialize(parsed.RootElement, Indented);
            }

            context.Response.ContentType = "application/json";
            if (model == "reset")
            {
                // Half the body, then a broken connection.
                await context.Response.WriteAsync(json[..(json.Length / 2)]);
                await context.Response.Body.FlushAsync();
                await Task.Delay(SlowDelay, context.RequestAborted);
                context.Abort();
                return;
            }

            await context.Response.WriteAsync(json);
            return;
        }

        context.Response.ContentType = "text/event-stream; charset=utf-8";
        var events = Events(id, model, chat);
        if (model == "batched")
        {
            await context.Response.WriteAsync(string.Concat(events));
            return;
        }

        if (model == "late")
        {
            // The headers now, the first event only after a pause (a model that answers but is slow to start).
            await context.Response.StartAsync();
            await context.Response.Body.FlushAsync();
            await Task.Delay(SlowDelay, context.RequestAborted);
        }

        for (var i = 0; i < events.Count; i++)
        {
            if (model == "reset" && i == 3)
            {
                // Let the first events reach the gateway, then break the connection (a crashed model server).
                await Task.Delay(SlowDelay, context.RequestAborted);
                context.Abort();
                return;
            }

            if (model == "no-done" && i == events.Count - 1)
            {
                return;
            }

            var bytes = Encoding.UTF8.GetBytes(events[i]);
            if (model == "split")
            {
                var half = bytes.Length / 2;
                await context.Response.Body.WriteAsync(bytes.AsMemory(0, half));
                await context.Response.Body.FlushAsync();
                await Task.Yield();
                await context.Response.Body.WriteAsync(bytes.AsMemory(half));
            }
            else
            {
                await context.Response.Body.WriteAsync(bytes);
            }

            await context.Response.Body.FlushAsync();
            if (model == "gated" && i == 0)
            {
                await Gate.Task.WaitAsync(context.RequestAborted);
            }

            if (model == "slow")
            {
                await Task.Delay(SlowDelay, context.RequestAborted);
            }
        }
    }

    public static List<string> Events(string id, string model, bool chat)
    {
        var events = new List<string>();
        for (var i = 0; i < Tokens; i++)
        {
            events.Add(chat
                ? $"data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
                : $"data: {{\"id\":\"{id}\",\"object\":\"text_completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"text\":\"tok{i} \",\"finish_reason\":null}}]}}\n\n");
        }

        events.Add(chat
            ? $"data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{Tokens},\"total_tokens\":{Tokens + 5}}}}}\n\n"
            : $"data: {{\"id\":\"{id}\",\"object\":\"text_completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}}]}}\n\n");
        events.Add("data: [DONE]\n\n");
        return events;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
