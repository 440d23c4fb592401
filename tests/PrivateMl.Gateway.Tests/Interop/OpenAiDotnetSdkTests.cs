using System.ClientModel;
using OpenAI;
using OpenAI.Chat;
using PrivateMl.Gateway.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Interop;

/// <summary>The official OpenAI .NET SDK (2.15.0) talks to the gateway like to OpenAI.</summary>
public sealed class OpenAiDotnetSdkTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync();

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    private ChatClient Client() => new("test-model", new ApiKeyCredential(GatewayFixture.Token),
        new OpenAIClientOptions { Endpoint = new Uri(_node.Client.BaseAddress!, "/v1") });

    [Fact]
    public async Task CompletesChat_NonStreaming_AndTheSignatureExists()
    {
        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal("hello there", completion.Content[0].Text);
        Assert.Equal(2, completion.Usage.OutputTokenCount);
        Assert.Equal(200, (await _node.GetJsonAsync($"/v1/signature/{completion.Id}")).Status);
    }

    [Fact]
    public async Task CompletesChat_Streaming_AndTheSignatureExists()
    {
        var text = new System.Text.StringBuilder();
        string? id = null;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("hi")], cancellationToken: TestContext.Current.CancellationToken))
        {
            id ??= update.CompletionId;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.Equal(string.Concat(Enumerable.Range(0, FakeUpstream.Tokens).Select(i => $"tok{i} ")), text.ToString());
        Assert.NotNull(id);
        Assert.Equal(200, (await _node.GetJsonAsync($"/v1/signature/{id}")).Status);
    }
}
