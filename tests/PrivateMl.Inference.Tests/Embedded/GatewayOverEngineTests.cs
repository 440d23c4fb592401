using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway;

namespace PrivateMl.Inference.Tests.Embedded;

/// <summary>The attesting gateway relays the engine's exact bytes, streaming and not, and signs their hashes.</summary>
public sealed class GatewayOverEngineTests(DemoModelFile model)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ChatThroughTheGateway_IsSignedOverTheExactBytes(bool stream)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var engine = EngineHarness.Load(model);
        var options = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], ModelName = engine.ModelId };
        await using var gateway = GatewayHost.Build(options, engine, agent: null, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        await gateway.StartAsync(ct);
        using var http = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0] };

        var body = Encoding.UTF8.GetBytes(EngineHarness.ChatBody(maxTokens: 12, stream: stream).ToJsonString());
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await http.PostAsync("/v1/chat/completions", content, ct);
        var received = await response.Content.ReadAsByteArrayAsync(ct);
        Assert.Equal(200, (int)response.StatusCode);

        string id;
        if (stream)
        {
            var events = EngineHarness.Events(Encoding.UTF8.GetString(received));
            Assert.Equal("[DONE]", events[^1]);
            id = JsonDocument.Parse(events[0]).RootElement.GetProperty("id").GetString()!;
        }
        else
        {
            var json = JsonDocument.Parse(received).RootElement;
            Assert.Equal("chat.completion", json.GetProperty("object").GetString());
            id = json.GetProperty("id").GetString()!;
        }

        using var signature = await http.GetAsync($"/v1/signature/{id}?model={engine.ModelId}&signing_algo=ecdsa", ct);
        Assert.Equal(200, (int)signature.StatusCode);
        var signed = JsonDocument.Parse(await signature.Content.ReadAsByteArrayAsync(ct)).RootElement;
        Assert.Equal(
            Convert.ToHexStringLower(SHA256.HashData(body)) + ":" + Convert.ToHexStringLower(SHA256.HashData(received)),
            signed.GetProperty("text").GetString());
        Assert.StartsWith("0x", signed.GetProperty("signing_address").GetString(), StringComparison.Ordinal);

        await gateway.StopAsync(ct);
    }

    [Fact]
    public async Task EngineErrors_ReachTheClientThroughTheGateway()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var engine = EngineHarness.Load(model);
        var options = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], ModelName = engine.ModelId };
        await using var gateway = GatewayHost.Build(options, engine, agent: null, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        await gateway.StartAsync(ct);
        using var http = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0] };

        using var content = new StringContent("""{"model":"nope","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");
        using var response = await http.PostAsync("/v1/chat/completions", content, ct);
        Assert.Equal(404, (int)response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(ct)).RootElement.GetProperty("error");
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());

        using var models = await http.GetAsync("/v1/models", ct);
        Assert.Contains(engine.ModelId, await models.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        await gateway.StopAsync(ct);
    }
}
