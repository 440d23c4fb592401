using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// The gateway's own instruments on the <c>System.Diagnostics.Metrics</c> meter <see cref="MeterName"/>, collected by
/// OpenTelemetry and written as Prometheus text after the upstream's metrics at <c>/v1/metrics</c>
/// (<see cref="PrometheusTextExporter"/>). Recording is allocation-free: no tags on the hot path.
/// The meter carries an instance tag so that several gateways in one process (tests) each export only their own.
/// </summary>
internal sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "PrivateMl.Gateway";
    public const string InstanceTag = "privateml.gateway.instance";

    private static readonly double[] LatencyBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _completions;
    private readonly Counter<long> _streams;
    private readonly UpDownCounter<long> _activeStreams;
    private readonly Counter<long> _streamChunks;
    private readonly Counter<long> _completionTokens;
    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _signed;
    private readonly Counter<long> _aborted;
    private readonly Counter<long> _upstreamErrors;
    private readonly Histogram<double> _signing;
    private readonly Histogram<double> _attestation;
    private readonly Histogram<double> _firstByte;

    public GatewayMetrics(IMeterFactory factory)
    {
        InstanceId = Guid.NewGuid().ToString("N");
        _meter = factory.Create(new MeterOptions(MeterName) { Tags = [new(InstanceTag, InstanceId)] });
        _requests = _meter.CreateCounter<long>("privateml.gateway.requests", description: "HTTP requests received.");
        _rejected = _meter.CreateCounter<long>("privateml.gateway.rejected", description: "Requests refused by auth, limits or validation.");
        _completions = _meter.CreateCounter<long>("privateml.gateway.completions", description: "Completion requests relayed.");
        _streams = _meter.CreateCounter<long>("privateml.gateway.streams", description: "Streaming completion requests relayed.");
        _activeStreams = _meter.CreateUpDownCounter<long>("privateml.gateway.streams_active", description: "Streams being relayed now.");
        _streamChunks = _meter.CreateCounter<long>("privateml.gateway.stream_chunks", description: "SSE data events relayed.");
        _completionTokens = _meter.CreateCounter<long>("privateml.gateway.completion_tokens", description: "Completion tokens reported by the upstream usage.");
        _promptTokens = _meter.CreateCounter<long>("privateml.gateway.prompt_tokens", description: "Prompt tokens reported by the upstream usage.");
        _signed = _meter.CreateCounter<long>("privateml.gateway.signed_responses", description: "Responses signed and stored.");
        _aborted = _meter.CreateCounter<long>("privateml.gateway.aborted_responses", description: "Responses aborted (upstream broke, timed out or client left); never signed.");
        _upstreamErrors = _meter.CreateCounter<long>("privateml.gateway.upstream_errors", description: "Upstream non-2xx answers or unreachable upstream.");
        var latency = new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets };
        _signing = _meter.CreateHistogram("privateml.gateway.signing", unit: "s", description: "Time to sign and store one response.", tags: null, advice: latency);
        _attestation = _meter.CreateHistogram("privateml.gateway.attestation", unit: "s", description: "Time to build one attestation report.", tags: null, advice: latency);
        _firstByte = _meter.CreateHistogram(
            FirstByteInstrument,
            unit: "s",
            description: "Time each step before a completion's first response byte took (tag phase: request_read, upstream_headers, upstream_first_byte, client_first_byte).",
            tags: null,
            advice: latency);
    }

    /// <summary>The histogram of <see cref="FirstBytePhase"/> times; the phase is its <see cref="PhaseTag"/> tag.</summary>
    public const string FirstByteInstrument = "privateml.gateway.first_byte";
    public const string PhaseTag = "phase";

    private static readonly KeyValuePair<string, object?>[] PhaseTags =
    [
        new(PhaseTag, "request_read"),
        new(PhaseTag, "upstream_headers"),
        new(PhaseTag, "upstream_first_byte"),
        new(PhaseTag, "client_first_byte"),
    ];

    /// <summary>The value of <see cref="InstanceTag"/> on this gateway's meter.</summary>
    public string InstanceId { get; }

    /// <summary>
    /// Adds zero to every counter so each is exported (as 0) from the start; called once the meter provider listens
    /// (when the host starts), since measurements made before that are not seen.
    /// </summary>
    public void Publish()
    {
        foreach (var counter in new[] { _requests, _rejected, _completions, _streams, _streamChunks, _completionTokens, _promptTokens, _signed, _aborted, _upstreamErrors })
        {
            counter.Add(0);
        }

        _activeStreams.Add(0);
    }

    public void Request() => _requests.Add(1);

    public void Rejected() => _rejected.Add(1);

    public void CompletionStarted(bool stream)
    {
        _completions.Add(1);
        if (stream)
        {
            _streams.Add(1);
            _activeStreams.Add(1);
        }
    }

    public void CompletionEnded(bool stream)
    {
        if (stream)
        {
            _activeStreams.Add(-1);
        }
    }

    public void Observed(long chunks, long completionTokens, long promptTokens)
    {
        _streamChunks.Add(chunks);
        _completionTokens.Add(completionTokens);
        _promptTokens.Add(promptTokens);
    }

    public void Signed(TimeSpan elapsed)
    {
        _signed.Add(1);
        _signing.Record(elapsed.TotalSeconds);
    }

    public void Aborted() => _aborted.Add(1);

    public void UpstreamError() => _upstreamErrors.Add(1);

    /// <summary>Whether anyone listens to the first-byte phases (the relay skips taking timestamps otherwise).</summary>
    public bool FirstByteEnabled => _firstByte.Enabled;

    /// <summary>
    /// Records the phases of <paramref name="times"/> that ended, each from the end of the one before; once per request
    /// (later calls do nothing), after the first byte is out or when the request ends without one.
    /// </summary>
    public void FirstByte(FirstByteTimes times)
    {
        if (!times.TakeForRecording())
        {
            return;
        }

        var from = times.Started;
        for (var phase = FirstBytePhase.RequestRead; phase <= FirstBytePhase.ClientFirstByte; phase++)
        {
            var end = times.EndOf(phase);
            if (end == 0)
            {
                return;
            }

            _firstByte.Record(Stopwatch.GetElapsedTime(from, end).TotalSeconds, PhaseTags[(int)phase]);
            from = end;
        }
    }

    public void Attested(TimeSpan elapsed) => _attestation.Record(elapsed.TotalSeconds);

    public void Dispose() => _meter.Dispose();
}

/// <summary>Steps of a completion request before its first response byte, each timed from the end of the one before.</summary>
internal enum FirstBytePhase
{
    /// <summary>From the request reaching the relay to its body read (bounded), and opened when end-to-end encrypted.</summary>
    RequestRead,

    /// <summary>Then to the upstream's response headers (the request sent, the upstream's own work, the way back).</summary>
    UpstreamHeaders,

    /// <summary>Then to the first upstream body bytes (for a model: the time to its first token). Streams only, like the next.</summary>
    UpstreamFirstByte,

    /// <summary>Then to those bytes written and flushed to the client's connection: the gateway's own hop.</summary>
    ClientFirstByte,
}

/// <summary>
/// When each <see cref="FirstBytePhase"/> of one request ended (<see cref="Stopwatch"/> timestamps). Marked as the
/// request goes and recorded all at once by <see cref="GatewayMetrics.FirstByte(FirstByteTimes)"/>, so that the
/// recording itself never sits between the upstream and the client's first byte.
/// </summary>
internal sealed class FirstByteTimes(long started)
{
    private long _requestRead;
    private long _upstreamHeaders;
    private long _upstreamFirstByte;
    private long _clientFirstByte;
    private bool _recorded;

    public long Started { get; } = started;

    public void Mark(FirstBytePhase phase)
    {
        var now = Stopwatch.GetTimestamp();
        switch (phase)
        {
            case FirstBytePhase.RequestRead: _requestRead = now; break;
            case FirstBytePhase.UpstreamHeaders: _upstreamHeaders = now; break;
            case FirstBytePhase.UpstreamFirstByte: _upstreamFirstByte = now; break;
            default: _clientFirstByte = now; break;
        }
    }

    /// <summary>When <paramref name="phase"/> ended; 0 if it has not.</summary>
    public long EndOf(FirstBytePhase phase) => phase switch
    {
        FirstBytePhase.RequestRead => _requestRead,
        FirstBytePhase.UpstreamHeaders => _upstreamHeaders,
        FirstBytePhase.UpstreamFirstByte => _upstreamFirstByte,
        _ => _clientFirstByte,
    };

    /// <summary>True the first time only.</summary>
    public bool TakeForRecording()
    {
        var first = !_recorded;
        _recorded = true;
        return first;
    }
}
