using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Fakes;

/// <summary>The shared fake-server builder (PrivateMl.Testing) these tests' PCCS, RIM service and OCSP responder run on.</summary>
public sealed class LoopbackServerTests
{
    [Fact]
    public async Task Serve_AnswersEveryRequest_On127001_AtAPortTheOsPicked()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var app = await LoopbackServer.ServeAsync(context => context.Response.WriteAsync("path " + context.Request.Path, ct), ct);
        using var http = new HttpClient { BaseAddress = app.BaseAddress() };

        Assert.Equal("127.0.0.1", app.BaseAddress().Host);
        Assert.NotEqual(0, app.BaseAddress().Port);
        Assert.Equal("/", app.BaseAddress().AbsolutePath);
        Assert.Equal("path /any/where", await http.GetStringAsync(new Uri("any/where", UriKind.Relative), ct));
    }

    [Fact]
    public async Task Start_ServesTheMappedRoutesOnly()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var app = await LoopbackServer.StartAsync(server => server.MapGet("/known", () => "yes"), ct);
        using var http = new HttpClient { BaseAddress = app.BaseAddress() };

        Assert.Equal("yes", await http.GetStringAsync(new Uri("known", UriKind.Relative), ct));
        using var missing = await http.GetAsync(new Uri("unknown", UriKind.Relative), ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task TwoServers_GetTwoPorts()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var one = await LoopbackServer.ServeAsync(_ => Task.CompletedTask, ct);
        await using var two = await LoopbackServer.ServeAsync(_ => Task.CompletedTask, ct);

        Assert.NotEqual(one.BaseAddress().Port, two.BaseAddress().Port);
    }
}
