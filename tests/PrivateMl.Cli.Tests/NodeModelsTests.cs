using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Cli.Commands;
using PrivateMl.Testing;

namespace PrivateMl.Cli.Tests;

/// <summary><c>chat</c> without <c>--model</c> asks the node's <c>/v1/models</c> (a real loopback server here).</summary>
public sealed class NodeModelsTests
{
    [Theory]
    [InlineData("""{"object":"list","data":[{"id":"privateml-demo","object":"model"},{"id":"other"}]}""", "privateml-demo")]
    [InlineData("""{"object":"list","data":[]}""", null)]
    [InlineData("""{"data":[{"id":42}]}""", null)]
    [InlineData("""not json""", null)]
    [InlineData("""[1,2,3]""", null)]
    public async Task First_model_id_or_null(string body, string? expected)
    {
        await using var node = await StartAsync(async context => await context.Response.WriteAsync(body));
        Assert.Equal(expected, await NodeModels.FirstAsync(node.BaseAddress(), token: null, handler: null, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Sends_the_bearer_token_and_gets_null_when_refused()
    {
        await using var node = await StartAsync(async context =>
        {
            if (context.Request.Headers.Authorization != "Bearer s3cret")
            {
                context.Response.StatusCode = 401;
                return;
            }

            await context.Response.WriteAsync("""{"data":[{"id":"m"}]}""");
        });
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal("m", await NodeModels.FirstAsync(node.BaseAddress(), "s3cret", handler: null, ct));
        Assert.Null(await NodeModels.FirstAsync(node.BaseAddress(), "wrong", handler: null, ct));
        Assert.Null(await NodeModels.FirstAsync(null, "s3cret", handler: null, ct));
    }

    private static Task<WebApplication> StartAsync(RequestDelegate models) =>
        LoopbackServer.StartAsync(app => app.MapGet("/v1/models", models), TestContext.Current.CancellationToken);
}
