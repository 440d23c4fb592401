using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLama;
using LLama.Common;
using PrivateMl.Inference.Embedded;
using static PrivateMl.Inference.Tests.Embedded.EngineHarness;

namespace PrivateMl.Inference.Tests.Embedded;

public sealed class EmbeddedEngineTests(DemoModelFile model)
{
    [Fact]
    public async Task Chat_NonStreaming_HasTheOpenAiShape()
    {
        await using var engine = Load(model);
        var (status, json) = await Chat(engine, ChatBody(maxTokens: 8));

        Assert.Equal(200, status);
        Assert.StartsWith("chatcmpl-", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());
        Assert.Equal(Now.ToUnixTimeSeconds(), json.GetProperty("created").GetInt64());
        Assert.Equal("privateml-demo", json.GetProperty("model").GetString());
        var choice = Assert.Single(json.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(JsonValueKind.String, choice.GetProperty("message").GetProperty("content").ValueKind);
        Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        var usage = json.GetProperty("usage");
        Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 1, 8);
        Assert.Equal(
            usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(),
            usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Chat_AppliesTheGgufChatTemplate()
    {
        await using var engine = Load(model);
        var (_, json) = await Chat(engine, ChatBody(content: "hi", maxTokens: 1));

        // The demo GGUF carries a ChatML template; llama.cpp renders it and the prompt is tokenized with its markers.
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(model.Path) { GpuLayerCount = 0 });
        var expected = weights.Tokenize("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", add_bos: true, special: true, Encoding.UTF8);
        Assert.Contains(expected, t => (int)t == 3); // <|im_start|> as one control token
        Assert.Equal(expected.Length, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Greedy_IsDeterministic_AndRunsToMaxTokens()
    {
        await using var engine = Load(model);
        var a = await Chat(engine, ChatBody(maxTokens: 24));
        var b = await Chat(engine, ChatBody(maxTokens: 24));
        Assert.Equal(Content(a.Json), Content(b.Json));
        Assert.NotEmpty(Content(a.Json));
        if (a.Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "length")
        {
            Assert.Equal(24, a.Json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }
    }

    [Fact]
    public async Task Seed_MakesSamplingReproducible()
    {
        await using var engine = Load(model);
        var first = Content((await Chat(engine, ChatBody(maxTokens: 32, temperature: 1, seed: 7))).Json);
        var again = Content((await Chat(engine, ChatBody(maxTokens: 32, temperature: 1, seed: 7))).Json);
        var other = Content((await Chat(engine, ChatBody(maxTokens: 32, temperature: 1, seed: 8))).Json);
        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public async Task Streaming_ChunksConcatenateToTheNonStreamingText()
    {
        await using var engine = Load(model);
        var whole = (await Chat(engine, ChatBody(maxTokens: 24))).Json;

        var body = ChatBody(maxTokens: 24, stream: true);
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var (status, contentType, sse) = await SendRaw(engine, HttpMethod.Post, "/v1/chat/completions", body.ToJsonString());
        Assert.Equal(200, status);
        Assert.StartsWith("text/event-stream", contentType, StringComparison.Ordinal);

        var events = Events(sse);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());

        var usageChunk = chunks[^1];
        Assert.Empty(usageChunk.GetProperty("choices").EnumerateArray());
        Assert.Equal(whole.GetProperty("usage").GetRawText(), usageChunk.GetProperty("usage").GetRawText());

        var last = chunks[^2].GetProperty("choices")[0];
        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), last.GetProperty("finish_reason").GetString());
        Assert.Empty(last.GetProperty("delta").EnumerateObject());

        var text = string.Concat(chunks[..^1].Select(c => c.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString()));
        Assert.Equal(Content(whole), text);
        Assert.True(chunks.Count > 4, "expected one chunk per generated piece");
    }

    [Fact]
    public async Task Completions_StreamingAndNot_HaveTheTextCompletionShape()
    {
        await using var engine = Load(model);
        var body = new { model = "privateml-demo", prompt = "the world", max_tokens = 12, temperature = 0 };
        var (status, json) = await Post(engine, "/v1/completions", body);
        Assert.Equal(200, status);
        Assert.StartsWith("cmpl-", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        var text = json.GetProperty("choices")[0].GetProperty("text").GetString();

        var (_, _, sse) = await SendRaw(engine, HttpMethod.Post, "/v1/completions", JsonSerializer.Serialize(new { model = "privateml-demo", prompt = "the world", max_tokens = 12, temperature = 0, stream = true }));
        var chunks = Events(sse)[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Equal(text, string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal(json.GetProperty("choices")[0].GetProperty("finish_reason").GetString(), chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Stop_EndsTheTextBeforeTheFirstOccurrence()
    {
        await using var engine = Load(model);
        var full = Content((await Chat(engine, ChatBody(maxTokens: 40))).Json);
        Assert.True(full.Length >= 8, $"greedy output too short to pick a stop sequence: '{full}'");
        var stop = full.Substring(4, 2);

        var body = ChatBody(maxTokens: 40);
        body["stop"] = new JsonArray(stop, "\u0001never\u0001");
        var (_, json) = await Chat(engine, body);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], Content(json));
        Assert.Equal("stop", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        body["stream"] = true;
        var (_, _, sse) = await SendRaw(engine, HttpMethod.Post, "/v1/chat/completions", body.ToJsonString());
        var streamed = string.Concat(Events(sse)[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta"))
            .Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString()));
        Assert.Equal(Content(json), streamed);
    }

    [Fact]
    public async Task Models_ListsTheServedModel()
    {
        await using var engine = Load(model);
        var (status, contentType, body) = await SendRaw(engine, HttpMethod.Get, "/v1/models");
        Assert.Equal(200, status);
        Assert.Equal("application/json", contentType);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Equal("list", json.GetProperty("object").GetString());
        var entry = Assert.Single(json.GetProperty("data").EnumerateArray());
        Assert.Equal("privateml-demo", entry.GetProperty("id").GetString());
        Assert.Equal("model", entry.GetProperty("object").GetString());
        Assert.Equal(512, entry.GetProperty("max_model_len").GetInt32());
    }

    [Fact]
    public async Task AbandonedStream_FreesItsSlot()
    {
        await using var engine = Load(model, concurrency: 1, queue: 0);
        var ct = TestContext.Current.CancellationToken;
        var response = await engine.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/chat/completions", Encoding.UTF8.GetBytes(ChatBody(maxTokens: 400, stream: true).ToJsonString())), ct);
        var buffer = new byte[16];
        Assert.True(await response.Body.ReadAsync(buffer, ct) > 0);
        await response.DisposeAsync();

        // The producer notices the closed reader, stops and releases the only slot; a later request is served.
        var status = 429;
        for (var attempt = 0; attempt < 200 && status == 429; attempt++)
        {
            status = (await Chat(engine, ChatBody(maxTokens: 2))).Status;
            if (status == 429)
            {
                await Task.Delay(25, ct);
            }
        }

        Assert.Equal(200, status);
    }

    private static string Content(JsonElement json) => json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
}
