using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PrivateMl.Inference.Upstream;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Operations;

/// <summary>
/// <c>/v1/metrics</c> relays the upstream's metrics before the gateway's own, bounded: an upstream body over 4 MiB is
/// cut after its last whole line within the bound (and says so), and one that never ends is not read past it.
/// </summary>
public sealed class UpstreamMetricsTests
{
    private const string Line = "vllm_fake_metric{le=\"0.5\"} 12345\n";

    [Fact]
    public async Task An_upstream_body_over_the_bound_is_cut_at_a_whole_line_and_says_so()
    {
        var lines = (GatewayEndpoints.MaxUpstreamMetricsBytes / Line.Length) + 1000;
        await using var upstream = await LoopbackServer.ServeAsync(context => context.Response.WriteAsync(string.Concat(Enumerable.Repeat(Line, lines)), context.RequestAborted), TestContext.Current.CancellationToken);

        var text = await MetricsThroughGatewayAsync(upstream);

        var cut = text.IndexOf("# upstream metrics cut at 4194304 bytes\n", StringComparison.Ordinal);
        Assert.True(cut > 0, "the cut is announced");
        Assert.True(cut <= GatewayEndpoints.MaxUpstreamMetricsBytes);
        Assert.Equal(cut / Line.Length, text[..cut].Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l + "\n" == Line));
        Assert.Equal(0, cut % Line.Length);
        Assert.Contains("privateml_gateway_", text[cut..], StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_upstream_body_that_never_ends_is_read_only_up_to_the_bound()
    {
        await using var upstream = await LoopbackServer.ServeAsync(async context =>
        {
            var chunk = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(Line, 1000)));
            while (!context.RequestAborted.IsCancellationRequested)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            }
        }, TestContext.Current.CancellationToken);

        var text = await MetricsThroughGatewayAsync(upstream);

        Assert.Contains("# upstream metrics cut at 4194304 bytes\n", text, StringComparison.Ordinal);
        Assert.Contains("privateml_gateway_", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("m 1\n", "m 1\n")]
    [InlineData("m 1", "m 1\n")]
    [InlineData("", "")]
    public void A_body_within_the_bound_is_relayed_whole_and_newline_terminated(string upstream, string expected)
    {
        var text = new StringBuilder();

        GatewayEndpoints.AppendUpstreamMetrics(text, Encoding.UTF8.GetBytes(upstream));

        Assert.Equal(expected, text.ToString());
    }

    private static async Task<string> MetricsThroughGatewayAsync(WebApplication upstream)
    {
        var options = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"] };
        var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = new Uri(upstream.BaseAddress(), "/") });
        await using var gateway = GatewayHost.Build(options, backend, agent: null, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        await gateway.StartAsync(TestContext.Current.CancellationToken);
        using var client = new HttpClient { BaseAddress = GatewayHost.Addresses(gateway)[0], Timeout = TimeSpan.FromSeconds(60) };
        return await client.GetStringAsync("/v1/metrics", TestContext.Current.CancellationToken);
    }
}
