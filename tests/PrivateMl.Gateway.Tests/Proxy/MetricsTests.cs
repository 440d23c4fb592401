using System.Diagnostics.Metrics;
using System.Globalization;
using PrivateMl.Gateway.Operations;
using PrivateMl.Gateway.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Proxy;

/// <summary>The gateway's metrics are System.Diagnostics.Metrics instruments collected through OpenTelemetry.</summary>
public sealed class MetricsTests
{
    [Fact]
    public async Task Instruments_AreOnThePrivateMlGatewayMeter_AndTheirMeasurementsReachTheEndpoint()
    {
        var seen = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, _) =>
        {
            if (instrument.Meter.Name == GatewayMetrics.MeterName)
            {
                lock (seen)
                {
                    seen.Add(instrument.Name);
                }
            }
        };
        listener.Start();
        await using var node = await GatewayFixture.StartAsync();

        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: true));
        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: false));
        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("fault-500", stream: false));
        var text = await node.Client.GetStringAsync("/v1/metrics", TestContext.Current.CancellationToken);

        lock (seen)
        {
            Assert.Contains("privateml.gateway.signed_responses", seen);
            Assert.Contains("privateml.gateway.signing", seen);
        }

        Assert.Equal(2, Value(text, "privateml_gateway_signed_responses_total"));
        Assert.Equal(2, Value(text, "privateml_gateway_completions_total"));
        Assert.True(Value(text, "privateml_gateway_requests_total") >= 3);
        Assert.Equal(1, Value(text, "privateml_gateway_streams_total"));
        Assert.Equal(0, Value(text, "privateml_gateway_streams_active"));
        Assert.Equal(FakeUpstream.Tokens + 1, Value(text, "privateml_gateway_stream_chunks_total"));
        Assert.Equal(FakeUpstream.Tokens + 2, Value(text, "privateml_gateway_completion_tokens_total"));
        Assert.Equal(1, Value(text, "privateml_gateway_upstream_errors_total"));
        Assert.Equal(2, Value(text, "privateml_gateway_signing_seconds_count"));
        Assert.Equal(2, Value(text, "privateml_gateway_signing_seconds_bucket{le=\"+Inf\"}"));
        Assert.Contains("# TYPE privateml_gateway_signing_seconds histogram", text, StringComparison.Ordinal);

        // First-byte phases: every completion that reached the upstream times its body read and the upstream's
        // headers (the 500 too); only the stream times its first upstream byte and the gateway's hop to the client.
        Assert.Equal(3, Value(text, "privateml_gateway_first_byte_seconds_count{phase=\"request_read\"}"));
        Assert.Equal(3, Value(text, "privateml_gateway_first_byte_seconds_count{phase=\"upstream_headers\"}"));
        Assert.Equal(1, Value(text, "privateml_gateway_first_byte_seconds_count{phase=\"upstream_first_byte\"}"));
        Assert.Equal(1, Value(text, "privateml_gateway_first_byte_seconds_count{phase=\"client_first_byte\"}"));
        Assert.True(Value(text, "privateml_gateway_first_byte_seconds_sum{phase=\"upstream_headers\"}") > 0);
        Assert.Contains("# TYPE privateml_gateway_streams_active gauge", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoGateways_InOneProcess_EachExportsOnlyItsOwnMeasurements()
    {
        await using var node = await GatewayFixture.StartAsync();
        var (_, second, _) = await node.StartGatewayAsync();

        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: true));
        var first = await node.Client.GetStringAsync("/v1/metrics", TestContext.Current.CancellationToken);
        var other = await second.GetStringAsync("/v1/metrics", TestContext.Current.CancellationToken);

        Assert.Equal(1, Value(first, "privateml_gateway_signed_responses_total"));
        Assert.Equal(0, Value(other, "privateml_gateway_signed_responses_total"));
        Assert.Equal(0, Value(other, "privateml_gateway_aborted_responses_total"));
    }

    private static double Value(string text, string name)
    {
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"{name} is not in:\n{text}");
        return double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
    }
}
