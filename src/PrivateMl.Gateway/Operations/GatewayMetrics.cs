using System.Globalization;
using System.Text;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// The gateway's own counters, written in Prometheus text exposition format after the upstream's metrics at
/// <c>/v1/metrics</c>. Lock-free (Interlocked); latencies are summaries (sum and count).
/// </summary>
internal sealed class GatewayMetrics
{
    private long _requests;
    private long _completions;
    private long _streams;
    private long _activeStreams;
    private long _streamChunks;
    private long _completionTokens;
    private long _promptTokens;
    private long _signed;
    private long _aborted;
    private long _upstreamErrors;
    private long _rejected;
    private long _signingTicks;
    private long _attestations;
    private long _attestationTicks;

    public void Request() => Interlocked.Increment(ref _requests);

    public void Rejected() => Interlocked.Increment(ref _rejected);

    public void CompletionStarted(bool stream)
    {
        Interlocked.Increment(ref _completions);
        if (stream)
        {
            Interlocked.Increment(ref _streams);
            Interlocked.Increment(ref _activeStreams);
        }
    }

    public void CompletionEnded(bool stream)
    {
        if (stream)
        {
            Interlocked.Decrement(ref _activeStreams);
        }
    }

    public void Observed(long chunks, long completionTokens, long promptTokens)
    {
        Interlocked.Add(ref _streamChunks, chunks);
        Interlocked.Add(ref _completionTokens, completionTokens);
        Interlocked.Add(ref _promptTokens, promptTokens);
    }

    public void Signed(TimeSpan elapsed)
    {
        Interlocked.Increment(ref _signed);
        Interlocked.Add(ref _signingTicks, elapsed.Ticks);
    }

    public void Aborted() => Interlocked.Increment(ref _aborted);

    public void UpstreamError() => Interlocked.Increment(ref _upstreamErrors);

    public void Attested(TimeSpan elapsed)
    {
        Interlocked.Increment(ref _attestations);
        Interlocked.Add(ref _attestationTicks, elapsed.Ticks);
    }

    public void WriteTo(StringBuilder text)
    {
        Counter(text, "privateml_gateway_requests_total", "HTTP requests received.", _requests);
        Counter(text, "privateml_gateway_rejected_total", "Requests refused by auth, limits or validation.", _rejected);
        Counter(text, "privateml_gateway_completions_total", "Completion requests relayed.", _completions);
        Counter(text, "privateml_gateway_streams_total", "Streaming completion requests relayed.", _streams);
        Gauge(text, "privateml_gateway_streams_active", "Streams being relayed now.", Interlocked.Read(ref _activeStreams));
        Counter(text, "privateml_gateway_stream_chunks_total", "SSE data events relayed.", _streamChunks);
        Counter(text, "privateml_gateway_completion_tokens_total", "Completion tokens reported by the upstream usage.", _completionTokens);
        Counter(text, "privateml_gateway_prompt_tokens_total", "Prompt tokens reported by the upstream usage.", _promptTokens);
        Counter(text, "privateml_gateway_signed_responses_total", "Responses signed and stored.", _signed);
        Counter(text, "privateml_gateway_aborted_responses_total", "Responses aborted (upstream broke, timed out or client left); never signed.", _aborted);
        Counter(text, "privateml_gateway_upstream_errors_total", "Upstream non-2xx answers or unreachable upstream.", _upstreamErrors);
        Summary(text, "privateml_gateway_signing_seconds", "Time to sign and store one response.", _signingTicks, _signed);
        Summary(text, "privateml_gateway_attestation_seconds", "Time to build one attestation report.", _attestationTicks, _attestations);
    }

    private static void Counter(StringBuilder text, string name, string help, long value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {Interlocked.Read(ref value)}\n");

    private static void Gauge(StringBuilder text, string name, string help, long value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");

    private static void Summary(StringBuilder text, string name, string help, long ticks, long count) =>
        text.Append(CultureInfo.InvariantCulture,
            $"# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {TimeSpan.FromTicks(ticks).TotalSeconds:0.#########}\n{name}_count {count}\n");
}
