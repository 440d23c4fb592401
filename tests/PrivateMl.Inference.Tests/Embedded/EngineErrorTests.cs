using System.Text.Json;
using System.Text.Json.Nodes;
using static PrivateMl.Inference.Tests.Embedded.EngineHarness;

namespace PrivateMl.Inference.Tests.Embedded;

/// <summary>Bad requests get OpenAI-shaped 4xx errors naming the field, and the engine keeps serving.</summary>
public sealed class EngineErrorTests(DemoModelFile model)
{
    public static TheoryData<string, string, int, string?> BadRequests => new()
    {
        { "unknown model", """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""", 404, "model" },
        { "missing model", """{"messages":[{"role":"user","content":"hi"}]}""", 400, "model" },
        { "max_tokens zero", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":0}""", 400, "max_tokens" },
        { "max_tokens negative", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":-5}""", 400, "max_tokens" },
        { "max_tokens string", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}""", 400, "max_tokens" },
        { "max_tokens beyond context", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":100000}""", 400, "max_tokens" },
        { "max_completion_tokens zero", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0}""", 400, "max_completion_tokens" },
        { "messages missing", """{"model":"privateml-demo"}""", 400, "messages" },
        { "messages empty", """{"model":"privateml-demo","messages":[]}""", 400, "messages" },
        { "messages not array", """{"model":"privateml-demo","messages":"hi"}""", 400, "messages" },
        { "message not object", """{"model":"privateml-demo","messages":["hi"]}""", 400, "messages[0]" },
        { "role missing", """{"model":"privateml-demo","messages":[{"content":"hi"}]}""", 400, "messages[0].role" },
        { "role unknown", """{"model":"privateml-demo","messages":[{"role":"wizard","content":"hi"}]}""", 400, "messages[0].role" },
        { "content number", """{"model":"privateml-demo","messages":[{"role":"user","content":"a"},{"role":"user","content":5}]}""", 400, "messages[1].content" },
        { "content image part", """{"model":"privateml-demo","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", 400, "messages[0].content" },
        { "n two", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"n":2}""", 400, "n" },
        { "temperature too high", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"temperature":2.5}""", 400, "temperature" },
        { "top_p zero", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"top_p":0}""", 400, "top_p" },
        { "seed fraction", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"seed":1.5}""", 400, "seed" },
        { "stop five", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}""", 400, "stop" },
        { "stream not bool", """{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"stream":"yes"}""", 400, "stream" },
        { "not json", """{"model":""", 400, null },
        { "json array", """[1,2]""", 400, null },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Rejects_WithAnOpenAiError_AndKeepsServing(string name, string body, int status, string? param)
    {
        await using var engine = Load(model);
        var (actual, json) = await Post(engine, "/v1/chat/completions", body);
        Assert.True(status == actual, name);
        var error = json.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString());

        Assert.Equal(200, (await Chat(engine, ChatBody(maxTokens: 2))).Status);
    }

    [Fact]
    public async Task Rejects_PromptLongerThanTheContext()
    {
        await using var engine = Load(model);
        var (status, json) = await Chat(engine, ChatBody(content: string.Concat(Enumerable.Repeat("§ ", 600)), maxTokens: 4));
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", json.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("messages", json.GetProperty("error").GetProperty("param").GetString());

        var (textStatus, text) = await Post(engine, "/v1/completions", new { model = "privateml-demo", prompt = new string('x', 2000) });
        Assert.Equal(400, textStatus);
        Assert.Equal("prompt", text.GetProperty("error").GetProperty("param").GetString());

        Assert.Equal(200, (await Chat(engine, ChatBody(maxTokens: 2))).Status);
    }

    [Fact]
    public async Task Rejects_UnknownModel_WithModelNotFound()
    {
        await using var engine = Load(model);
        var body = ChatBody();
        body["model"] = "llama-3-70b";
        var (status, json) = await Chat(engine, body);
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", json.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Rejects_UnknownRoutesAndMethods()
    {
        await using var engine = Load(model);
        Assert.Equal(404, (await SendRaw(engine, HttpMethod.Get, "/v1/embeddings")).Status);
        Assert.Equal(405, (await SendRaw(engine, HttpMethod.Get, "/v1/chat/completions")).Status);
        Assert.Equal(405, (await SendRaw(engine, HttpMethod.Post, "/v1/models", "{}")).Status);
    }

    [Fact]
    public async Task AcceptsNullsAndTextParts_AsOpenAiClientsSendThem()
    {
        await using var engine = Load(model);
        var body = JsonNode.Parse("""
            {"model":"privateml-demo","max_tokens":2,"temperature":null,"top_p":null,"stop":null,"seed":null,"n":1,
             "messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]},
                         {"role":"assistant","content":null},{"role":"user","content":"again"}]}
            """)!.AsObject();
        Assert.Equal(200, (await Chat(engine, body)).Status);
    }
}
