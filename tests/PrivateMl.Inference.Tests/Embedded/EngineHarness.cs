using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrivateMl.Inference.Embedded;
using PrivateMl.Testing;

namespace PrivateMl.Inference.Tests.Embedded;

/// <summary>Drives an <see cref="EmbeddedEngine"/> through its bytes-in, bytes-out contract, as the gateway does.</summary>
internal static class EngineHarness
{
    public static readonly DateTimeOffset Now = new(2026, 11, 25, 9, 0, 0, TimeSpan.Zero);

    public static EmbeddedEngine Load(DemoModelFile model, int concurrency = 2, int queue = 4) => EmbeddedEngine.Load(new EmbeddedEngineOptions
    {
        ModelPath = model.Path,
        MaxConcurrency = concurrency,
        MaxQueue = queue,
        Threads = 1,
        TimeProvider = new ManualClock(Now),
    });

    public static async Task<(int Status, string? ContentType, string Body)> SendRaw(EmbeddedEngine engine, HttpMethod method, string path, string body = "")
    {
        await using var response = await engine.SendAsync(new BackendRequest(method, path, Encoding.UTF8.GetBytes(body)), TestContext.Current.CancellationToken);
        using var reader = new StreamReader(response.Body, Encoding.UTF8);
        return (response.StatusCode, response.ContentType, await reader.ReadToEndAsync(TestContext.Current.CancellationToken));
    }

    public static async Task<(int Status, JsonElement Json)> Post(EmbeddedEngine engine, string path, object body)
    {
        var (status, _, text) = await SendRaw(engine, HttpMethod.Post, path, body as string ?? JsonSerializer.Serialize(body));
        return (status, JsonDocument.Parse(text).RootElement.Clone());
    }

    public static Task<(int Status, JsonElement Json)> Chat(EmbeddedEngine engine, JsonObject body) => Post(engine, "/v1/chat/completions", body.ToJsonString());

    public static JsonObject ChatBody(string content = "hello", int maxTokens = 16, double temperature = 0, long? seed = null, bool stream = false)
    {
        var body = new JsonObject
        {
            ["model"] = "privateml-demo",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = content }),
            ["max_tokens"] = maxTokens,
            ["temperature"] = temperature,
            ["stream"] = stream,
        };
        if (seed is { } s)
        {
            body["seed"] = s;
        }

        return body;
    }

    /// <summary>Splits an SSE body into its <c>data:</c> payloads, checking the framing on the way.</summary>
    public static List<string> Events(string sse)
    {
        Assert.EndsWith("\n\n", sse, StringComparison.Ordinal);
        var events = sse[..^2].Split("\n\n");
        foreach (var e in events)
        {
            Assert.StartsWith("data: ", e, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e);
        }

        return events.Select(e => e["data: ".Length..]).ToList();
    }
}
