using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using PrivateMl.Inference.Upstream;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Operations;

/// <summary>
/// <c>/ready</c> asks the model too: 503 <c>upstream_unavailable</c> while the model server loads or is gone, each
/// answer standing for the probe interval, and one upstream request however many probes arrive at once.
/// </summary>
public sealed class ReadinessTests
{
    [Fact]
    public async Task Ready_follows_the_model_from_loading_to_answering_and_each_answer_stands_for_the_probe_interval()
    {
        var modelStatus = 503;
        var probes = 0;
        await using var upstream = await LoopbackServer.ServeAsync(async context =>
        {
            Interlocked.Increment(ref probes);
            context.Response.StatusCode = Volatile.Read(ref modelStatus);
            await context.Response.WriteAsync("{\"object\":\"list\",\"data\":[]}");
        }, TestContext.Current.CancellationToken);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await StartAsync(new Uri(upstream.BaseAddress(), "/"), clock, o => o.ReadinessProbeInterval = TimeSpan.FromSeconds(5));
        using var client = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0] };

        Assert.Equal((503, "upstream_unavailable"), await ReadyAsync(client));
        Volatile.Write(ref modelStatus, 200);
        Assert.Equal((503, "upstream_unavailable"), await ReadyAsync(client));
        Assert.Equal(1, Volatile.Read(ref probes));

        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal((200, "ready"), await ReadyAsync(client));
        Assert.Equal(2, Volatile.Read(ref probes));
    }

    [Fact]
    public async Task Probes_that_arrive_together_share_one_upstream_request()
    {
        var probes = 0;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await LoopbackServer.ServeAsync(async context =>
        {
            Interlocked.Increment(ref probes);
            await release.Task.WaitAsync(context.RequestAborted);
            await context.Response.WriteAsync("{\"object\":\"list\",\"data\":[]}");
        }, TestContext.Current.CancellationToken);
        await using var gateway = await StartAsync(new Uri(upstream.BaseAddress(), "/"), new FakeTimeProvider(DateTimeOffset.UtcNow), _ => { });
        using var client = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0] };

        var waiting = Enumerable.Range(0, 16).Select(_ => ReadyAsync(client)).ToArray();
        while (Volatile.Read(ref probes) == 0)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        release.SetResult();
        var answers = await Task.WhenAll(waiting);

        Assert.All(answers, a => Assert.Equal((200, "ready"), a));
        Assert.Equal(1, Volatile.Read(ref probes));
    }

    [Theory]
    [InlineData(true, 503, "upstream_unavailable")]
    [InlineData(false, 200, "ready")]
    public async Task A_model_server_that_cannot_be_reached_is_not_ready_unless_the_check_is_off(bool checksUpstream, int status, string reason)
    {
        using var nothing = new RefusingPort();
        await using var gateway = await StartAsync(new Uri($"http://127.0.0.1:{nothing.Port}/"), TimeProvider.System, o => o.ReadinessChecksUpstream = checksUpstream);
        using var client = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0] };

        Assert.Equal((status, reason), await ReadyAsync(client));
        using var health = await client.GetAsync("/health", TestContext.Current.CancellationToken);
        Assert.Equal(200, (int)health.StatusCode);
    }

    private static async Task<WebApplication> StartAsync(Uri upstream, TimeProvider time, Action<GatewayOptions> configure)
    {
        var options = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"] };
        configure(options);
        var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = upstream });
        var app = GatewayHost.Build(options, backend, agent: null, s => s.AddSingleton(time), l => l.SetMinimumLevel(LogLevel.Warning));
        await app.StartAsync(TestContext.Current.CancellationToken);
        return app;
    }

    private static async Task<(int Status, string Reason)> ReadyAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/ready", TestContext.Current.CancellationToken);
        using var body = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));
        return ((int)response.StatusCode, body.RootElement.GetProperty("status").GetString()!);
    }
}
