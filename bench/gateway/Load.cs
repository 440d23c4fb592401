using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway;
using PrivateMl.Inference;
using PrivateMl.Inference.Upstream;

/// <summary>Which address the load generator sends to.</summary>
internal enum Route
{
    Direct,
    Gateway,

    /// <summary>Through the yardstick: a bare .NET pass-through proxy (<see cref="BareProxy"/>).</summary>
    Bare,
}

/// <summary>The bench's processes, in the order their CPU is reported.</summary>
internal enum Proc
{
    Loadgen,
    Upstream,
    Gateway,
}

/// <summary>CPU time (µs) and allocated bytes of one process at one moment.</summary>
internal readonly record struct ProcessStats(double CpuMicros, long Allocated, double GcPauseMicros = 0, int Collections = 0)
{
    public static ProcessStats Current() => new(
        Process.GetCurrentProcess().TotalProcessorTime.TotalMicroseconds,
        GC.GetTotalAllocatedBytes(precise: true),
        GC.GetTotalPauseDuration().TotalMicroseconds,
        GC.CollectionCount(0));

    public static ProcessStats operator -(ProcessStats a, ProcessStats b) =>
        new(a.CpuMicros - b.CpuMicros, a.Allocated - b.Allocated, a.GcPauseMicros - b.GcPauseMicros, a.Collections - b.Collections);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"stats {CpuMicros:0} {Allocated} {GcPauseMicros:0} {Collections}");

    public static ProcessStats Parse(string line)
    {
        var parts = line.Split(' ');
        return new ProcessStats(
            double.Parse(parts[1], CultureInfo.InvariantCulture),
            long.Parse(parts[2], CultureInfo.InvariantCulture),
            double.Parse(parts[3], CultureInfo.InvariantCulture),
            int.Parse(parts[4], CultureInfo.InvariantCulture));
    }
}

internal sealed record RunResult(double Seconds, long Requests, long Tokens, long Errors, double[] Ttfbs, double[] Transits, double[] Outbound, double[] Inbound, double[] Pacings, double[] Ends, double[] Deliveries, double[] CpuMicros, long GatewayAllocated, int Streams = 0, double BusySeconds = 0, double GatewayGcPauseMicros = 0, int GatewayCollections = 0, double[]? ToProxy = null, double[]? Onward = null, double[]? InGateway = null, double[]? ToUpstream = null)
{
    public static RunResult Empty { get; } = new(0, 0, 0, 0, [], [], [], [], [], [], [], [0, 0, 0], 0);

    /// <summary>Every token's delivery, upstream write → read here (ms p50/p99 over all tokens of all requests).</summary>
    public string Delivery => string.Create(CultureInfo.InvariantCulture, $"{Percentile(Deliveries, 0.5):0.000}/{Percentile(Deliveries, 0.99):0.000}");

    /// <summary>
    /// The upstream's own time from its first to its last token (ms p50/p99, from its stamps) and how long its last token
    /// took to arrive here (ms p50/p99): a slower stream through the gateway is either the upstream pacing slower or
    /// the end being delivered later, and these tell which.
    /// </summary>
    public string PacingAndEnd => string.Create(CultureInfo.InvariantCulture,
        $"{Percentile(Pacings, 0.5):0.000}/{Percentile(Pacings, 0.99):0.000} | {Percentile(Ends, 0.5):0.000}/{Percentile(Ends, 0.99):0.000}");

    /// <summary>The proxy process's garbage collections in the run and their total pause, as "count / ms".</summary>
    public string GatewayGc => string.Create(CultureInfo.InvariantCulture, $"{GatewayCollections} / {GatewayGcPauseMicros / 1000:0.0}");

    /// <summary>Tokens per wall second of the whole run, including its tail (workers finishing their last request one by one).</summary>
    public double TokensPerSecond => Tokens / Seconds;

    /// <summary>
    /// Tokens per second with all <see cref="Streams"/> busy: streams × tokens ÷ the summed duration of the completed
    /// requests (Little's law for a closed loop). Unlike <see cref="TokensPerSecond"/> it does not depend on how the run's
    /// tail lines up, where one extra request started just before the deadline costs a whole request of wall time.
    /// </summary>
    public double SteadyTokensPerSecond => BusySeconds > 0 ? Streams * Tokens / BusySeconds : double.NaN;

    public double RequestsPerSecond => Requests / Seconds;

    /// <summary>CPU µs of one process per completed request.</summary>
    public double CpuPerRequest(Proc process) => CpuMicros[(int)process] / Math.Max(1, Requests);

    /// <summary>CPU seconds of one process per wall second of the run.</summary>
    public double Cores(Proc process) => CpuMicros[(int)process] / 1e6 / Seconds;

    public double GatewayAllocatedPerRequest => (double)GatewayAllocated / Math.Max(1, Requests);

    /// <summary>Time to first byte percentiles (ms) over every completed request of the run (<see cref="Ttfbs"/> is sorted).</summary>
    public double TtfbP50 => Percentile(Ttfbs, 0.50);

    public double TtfbP99 => Percentile(Ttfbs, 0.99);

    /// <summary>
    /// Transit percentiles (ms): the time to first byte less the upstream's own time (from the request reaching the
    /// upstream's handler to its first token write), i.e. the way there plus the way back, measured on the machine's one
    /// monotonic clock (the upstream stamps both instants into its first event). The model's time, and the
    /// millisecond-grained timer jitter of the synthetic pacing, drop out, so what the gateway adds shows at sub-ms scale.
    /// </summary>
    public double TransitP50 => Percentile(Transits, 0.50);

    public double TransitP99 => Percentile(Transits, 0.99);

    /// <summary>The two halves of a transit, p50/p99 in ms: out = send → the upstream's handler, back = its first write → first byte here.</summary>
    public string Legs => string.Create(CultureInfo.InvariantCulture, $"{Percentile(Outbound, 0.5):0.000}/{Percentile(Outbound, 0.99):0.000} + {Percentile(Inbound, 0.5):0.000}/{Percentile(Inbound, 0.99):0.000}");

    /// <summary>
    /// The out leg split at the proxy (ms p50/p99): send → the proxy's first middleware (its socket wake-up and HTTP
    /// parse), then → the upstream's handler (its pipeline, relay and upstream send, and the upstream's wake-up). Empty
    /// for direct and nginx, which stamp nothing.
    /// </summary>
    public string OutSplit => ToProxy is { Length: > 0 } to && Onward is { Length: > 0 } on
        ? string.Create(CultureInfo.InvariantCulture, $"{Percentile(to, 0.5):0.000}/{Percentile(to, 0.99):0.000} + {Percentile(on, 0.5):0.000}/{Percentile(on, 0.99):0.000}")
        : "—";

    /// <summary>
    /// The onward part split at the gateway's upstream send (ms p50/p99): its first middleware → the request handed to
    /// the socket (pipeline, relay, request read, upstream client), then → the upstream's handler (the upstream's
    /// wake-up and HTTP parse). Empty for every path but the gateway.
    /// </summary>
    public string OnwardSplit => InGateway is { Length: > 0 } gw && ToUpstream is { Length: > 0 } up
        ? string.Create(CultureInfo.InvariantCulture, $"{Percentile(gw, 0.5):0.000}/{Percentile(gw, 0.99):0.000}/{gw[^1]:0.000} + {Percentile(up, 0.5):0.000}/{Percentile(up, 0.99):0.000}/{up[^1]:0.000}")
        : "—";

    public static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

    /// <summary>Two runs of the same path as one (rounds of an alternating comparison).</summary>
    public static RunResult operator +(RunResult a, RunResult b) => new(
        a.Seconds + b.Seconds, a.Requests + b.Requests, a.Tokens + b.Tokens, a.Errors + b.Errors,
        [.. a.Ttfbs.Concat(b.Ttfbs).Order()], [.. a.Transits.Concat(b.Transits).Order()], [.. a.Outbound.Concat(b.Outbound).Order()], [.. a.Inbound.Concat(b.Inbound).Order()], [.. a.Pacings.Concat(b.Pacings).Order()], [.. a.Ends.Concat(b.Ends).Order()], [.. a.Deliveries.Concat(b.Deliveries).Order()], [.. a.CpuMicros.Zip(b.CpuMicros, (x, y) => x + y)], a.GatewayAllocated + b.GatewayAllocated,
        Math.Max(a.Streams, b.Streams), a.BusySeconds + b.BusySeconds, a.GatewayGcPauseMicros + b.GatewayGcPauseMicros, a.GatewayCollections + b.GatewayCollections,
        [.. (a.ToProxy ?? []).Concat(b.ToProxy ?? []).Order()], [.. (a.Onward ?? []).Concat(b.Onward ?? []).Order()],
        [.. (a.InGateway ?? []).Concat(b.InGateway ?? []).Order()], [.. (a.ToUpstream ?? []).Concat(b.ToUpstream ?? []).Order()]);
}

/// <summary>
/// Closed-loop load: <c>concurrency</c> workers each send streaming requests back to back until the duration has
/// passed and at least <c>minRequests</c> requests have completed. Only completed, checked requests give TTFB samples.
/// The same generator, client and upstream serve both routes; the pacing travels in the request body
/// (<c>bench_interval_ms</c>), which the gateway forwards unchanged.
/// </summary>
internal sealed class LoadGenerator(HttpClient client, BenchPeer upstream, BenchPeer gateway, BenchPeer? bare, int expectedTokens)
{
    /// <param name="stagger">
    /// When positive, worker w waits w/concurrency of it before its first request, so that the streams do not start,
    /// and therefore do not end, together. Without it every paced stream has the same length and all of them stay in
    /// step: they end in the same millisecond, and the gateway signs all of them at once.
    /// </param>
    public async Task<RunResult> RunAsync(Route route, int concurrency, TimeSpan duration, int minRequests, int intervalMs, TimeSpan stagger = default)
    {
        var body = Encoding.UTF8.GetBytes($"{{\"model\":\"bench\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"stream\":true,\"bench_interval_ms\":{intervalMs}}}");

        // The third CPU figure is the proxy in the path: the gateway, or the bare proxy on its route.
        var middle = route == Route.Bare ? bare ?? throw new InvalidOperationException("no bare proxy was started") : gateway;
        var uri = new Uri(route switch { Route.Direct => upstream.Address, _ => middle.Address }, "/v1/chat/completions");
        long requests = 0, tokens = 0, errors = 0, busyTicks = 0;
        var ttfbs = new List<double>[concurrency];
        var transits = new List<double>[concurrency];
        var outbound = new List<double>[concurrency];
        var toProxy = new List<double>[concurrency];
        var onward = new List<double>[concurrency];
        var inGateway = new List<double>[concurrency];
        var toUpstream = new List<double>[concurrency];
        var inbound = new List<double>[concurrency];
        var pacings = new List<double>[concurrency];
        var ends = new List<double>[concurrency];
        var deliveries = new List<double>[concurrency];
        GC.Collect();
        var before = new[] { ProcessStats.Current(), await upstream.StatsAsync(), await middle.StatsAsync() };
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            if (stagger > TimeSpan.Zero)
            {
                await Task.Delay(stagger * w / concurrency);
            }

            var local = ttfbs[w] = [];
            var localTransits = transits[w] = [];
            var localOut = outbound[w] = [];
            var localToProxy = toProxy[w] = [];
            var localOnward = onward[w] = [];
            var localInGateway = inGateway[w] = [];
            var localToUpstream = toUpstream[w] = [];
            var localIn = inbound[w] = [];
            var localPacings = pacings[w] = [];
            var localEnds = ends[w] = [];
            var localDeliveries = deliveries[w] = [];
            var buffer = new byte[16 * 1024];
            while (clock.Elapsed < duration || Interlocked.Read(ref requests) + Interlocked.Read(ref errors) < minRequests)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(body) };
                    request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    await using var stream = await response.Content.ReadAsStreamAsync();
                    var counter = new EventCounter();
                    var ttfb = double.NaN;
                    var firstByte = 0L;
                    int read;
                    while ((read = await stream.ReadAsync(buffer)) > 0)
                    {
                        if (double.IsNaN(ttfb))
                        {
                            firstByte = Stopwatch.GetTimestamp();
                            ttfb = Stopwatch.GetElapsedTime(started, firstByte).TotalMilliseconds;
                        }

                        counter.Feed(buffer.AsSpan(0, read), Stopwatch.GetTimestamp());
                    }

                    if (!response.IsSuccessStatusCode || counter.Tokens != expectedTokens || !counter.Done)
                    {
                        Interlocked.Increment(ref errors);
                        continue;
                    }

                    local.Add(ttfb);
                    if (counter.Stamps is var (_, firstSent) && counter.End is var (lastSent, lastSeen))
                    {
                        localPacings.Add(Stopwatch.GetElapsedTime(firstSent, lastSent).TotalMilliseconds);
                        localEnds.Add(Stopwatch.GetElapsedTime(lastSent, lastSeen).TotalMilliseconds);
                    }

                    localDeliveries.AddRange(counter.Deliveries);
                    if (counter.Stamps is var (arrived, sent))
                    {
                        var there = Stopwatch.GetElapsedTime(started, arrived).TotalMilliseconds;
                        var back = Stopwatch.GetElapsedTime(sent, firstByte).TotalMilliseconds;
                        localTransits.Add(there + back);
                        localOut.Add(there);
                        if (response.Headers.TryGetValues(EntryStamp.Header, out var stamps) && long.TryParse(stamps.First(), CultureInfo.InvariantCulture, out var entered))
                        {
                            localToProxy.Add(Stopwatch.GetElapsedTime(started, entered).TotalMilliseconds);
                            localOnward.Add(Stopwatch.GetElapsedTime(entered, arrived).TotalMilliseconds);
                            if (response.Headers.TryGetValues(SentStamp.Header, out var sentStamps) && long.TryParse(sentStamps.First(), CultureInfo.InvariantCulture, out var handedOver))
                            {
                                localInGateway.Add(Stopwatch.GetElapsedTime(entered, handedOver).TotalMilliseconds);
                                localToUpstream.Add(Stopwatch.GetElapsedTime(handedOver, arrived).TotalMilliseconds);
                            }
                        }
                        localIn.Add(back);
                    }

                    Interlocked.Add(ref busyTicks, Stopwatch.GetTimestamp() - started);
                    Interlocked.Add(ref tokens, counter.Tokens);
                    Interlocked.Increment(ref requests);
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var seconds = clock.Elapsed.TotalSeconds;
        var after = new[] { ProcessStats.Current(), await upstream.StatsAsync(), await middle.StatsAsync() };
        var used = after.Zip(before, (a, b) => a - b).ToArray();
        return new RunResult(seconds, requests, tokens, errors, [.. ttfbs.SelectMany(l => l).Order()], [.. transits.SelectMany(l => l).Order()], [.. outbound.SelectMany(l => l).Order()], [.. inbound.SelectMany(l => l).Order()], [.. pacings.SelectMany(l => l).Order()], [.. ends.SelectMany(l => l).Order()], [.. deliveries.SelectMany(l => l).Order()], [.. used.Select(u => u.CpuMicros)], used[(int)Proc.Gateway].Allocated,
            concurrency, (double)busyTicks / Stopwatch.Frequency, used[(int)Proc.Gateway].GcPauseMicros, used[(int)Proc.Gateway].Collections,
            [.. toProxy.SelectMany(l => l).Order()], [.. onward.SelectMany(l => l).Order()],
            [.. inGateway.SelectMany(l => l).Order()], [.. toUpstream.SelectMany(l => l).Order()]);
    }

    /// <summary>Counts content events (those with "content") and notices [DONE], across read boundaries.</summary>
    private sealed class EventCounter
    {
        private readonly StringBuilder _line = new();

        public int Tokens { get; private set; }

        public bool Done { get; private set; }

        /// <summary>The upstream's (arrived, sent) monotonic timestamps from its first event, if it carried them.</summary>
        public (long Arrived, long Sent)? Stamps { get; private set; }

        /// <summary>How long each token took from the upstream's write to being read here (ms).</summary>
        public List<double> Deliveries { get; } = [];

        /// <summary>When the upstream sent its last token (its stamp) and when that token was read here.</summary>
        public (long Sent, long Seen)? End { get; private set; }

        public void Feed(ReadOnlySpan<byte> bytes, long now)
        {
            foreach (var b in bytes)
            {
                if (b != (byte)'\n')
                {
                    _line.Append((char)b);
                    continue;
                }

                var line = _line.ToString();
                _line.Clear();
                if (line == "data: [DONE]")
                {
                    Done = true;
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Contains("\"content\"", StringComparison.Ordinal))
                {
                    Tokens++;
                    var sent = ReadStamp(line, "bench_s");
                    if (Stamps is null && ReadStamp(line, "bench_t") is { } arrived && sent is { } first)
                    {
                        Stamps = (arrived, first);
                    }

                    if (sent is not null)
                    {
                        End = (sent.Value, now); // the last token's, in the end
                        Deliveries.Add(Stopwatch.GetElapsedTime(sent.Value, now).TotalMilliseconds);
                    }
                }
            }
        }

        /// <summary>The number in <c>"key":"123"</c> of an event line, if present.</summary>
        private static long? ReadStamp(string line, string key)
        {
            var marker = "\"" + key + "\":\"";
            var start = line.IndexOf(marker, StringComparison.Ordinal);
            var end = start < 0 ? -1 : line.IndexOf('"', start + marker.Length);
            return end > 0 && long.TryParse(line.AsSpan(start + marker.Length, end - start - marker.Length), CultureInfo.InvariantCulture, out var value) ? value : null;
        }
    }
}

/// <summary>
/// A child process of the bench (this program with <c>--role upstream|gateway</c>). It prints
/// <c>listening URL</c>, then answers <c>stats</c> (its CPU µs and allocated bytes) and <c>phases</c> (the gateway's
/// first-byte phases since the last ask) on its standard input, and stops at <c>quit</c> or end of input.
/// </summary>
internal sealed class BenchPeer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly SemaphoreSlim _lock = new(1, 1);

    private BenchPeer(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    public int ProcessId => _process.Id;

    public static async Task<BenchPeer> StartAsync(string role, Settings settings, Uri? upstream)
    {
        var host = Environment.ProcessPath ?? "dotnet";
        var pin = role == "upstream" ? settings.PinUpstream : settings.PinGateway;

        // taskset sets the affinity before the runtime starts, so every thread the child creates inherits it.
        var start = new ProcessStartInfo(pin is null ? host : "taskset") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (pin is not null)
        {
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(pin);
            start.ArgumentList.Add(host);
        }

        // The .NET yardstick runs under the gateway's runtime knobs too, so that an A/B of a knob compares like with like.
        if (role is "gateway" or "bare")
        {
            // As `privateml serve` (a web app: server GC with background collections). The bench's own runtimeconfig
            // turns background GC off for the load generator; --gateway-env may still set it.
            start.Environment["DOTNET_gcConcurrent"] = "1";
            foreach (var (name, value) in settings.GatewayEnvironment)
            {
                start.Environment[name] = value;
            }
        }

        if (System.IO.Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]); // the bench's .dll under `dotnet`
        }

        foreach (var arg in new[] { "--role", role, "--tokens", settings.Tokens.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(arg);
        }

        if (settings.Auth)
        {
            start.ArgumentList.Add("--auth");
        }

        start.ArgumentList.Add("--inline-scheduling");
        start.ArgumentList.Add(settings.InlineScheduling ? "on" : "off");

        if (role == "gateway")
        {
            start.ArgumentList.Add("--upstream-client");
            start.ArgumentList.Add(settings.UpstreamClient);
        }

        if (role == "bare")
        {
            start.ArgumentList.Add("--yardstick");
            start.ArgumentList.Add(settings.Yardstick);
        }

        if (upstream is not null)
        {
            start.ArgumentList.Add("--upstream");
            start.ArgumentList.Add(upstream.ToString());
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"the {role} process did not start");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var line = await ReadReplyAsync(process, "listening ", timeout.Token);
        return new BenchPeer(process, new Uri(line["listening ".Length..]));
    }

    public async Task<ProcessStats> StatsAsync() => ProcessStats.Parse(await AskAsync("stats"));

    /// <summary>The child's live managed heap in bytes, after a full collection.</summary>
    public async Task<long> HeapAsync() => long.Parse((await AskAsync("heap"))["heap ".Length..], CultureInfo.InvariantCulture);

    /// <summary>The gateway's first-byte phases since the last ask, as table cells (and forgets them).</summary>
    public async Task<string> PhasesAsync() => (await AskAsync("phases"))["phases ".Length..];

    private async Task<string> AskAsync(string command)
    {
        await _lock.WaitAsync();
        try
        {
            await _process.StandardInput.WriteLineAsync(command);
            await _process.StandardInput.FlushAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            return await ReadReplyAsync(_process, command + " ", timeout.Token);
        }
        finally
        {
            _lock.Release();
        }
    }

    private static async Task<string> ReadReplyAsync(Process process, string prefix, CancellationToken cancellationToken)
    {
        while (await process.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }

            Console.Error.WriteLine($"[{process.Id}] {line}");
        }

        throw new InvalidOperationException($"bench process {process.Id} ended before answering '{prefix.Trim()}'");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _process.StandardInput.WriteLineAsync("quit");
            await _process.StandardInput.FlushAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            _process.Kill();
        }

        _process.Dispose();
        _lock.Dispose();
    }
}

/// <summary>The child side of <see cref="BenchPeer"/>: the synthetic upstream or the gateway in its own process.</summary>
internal static class BenchChild
{
    public static async Task RunAsync(Settings settings)
    {
        if (settings.Role == "upstream")
        {
            await using var upstream = await SyntheticUpstream.StartAsync(settings.Tokens);
            await ServeAsync(upstream.Address, null);
            return;
        }

        if (settings.Role == "bare" && settings.Yardstick == "nginx")
        {
            await using var nginx = await NginxProxy.StartAsync(settings.Upstream ?? throw new ArgumentException("--role bare needs --upstream"));
            await ServeAsync(nginx.Address, null, nginx.Stats);
            return;
        }

        if (settings.Role == "bare")
        {
            await using var bare = await BareProxy.StartAsync(settings.Upstream ?? throw new ArgumentException("--role bare needs --upstream"), settings.InlineScheduling);
            await ServeAsync(bare.Address, null);
            return;
        }

        using var phases = new PhaseRecorder();
        var upstreamOptions = new UpstreamHttpBackendOptions { BaseAddress = settings.Upstream ?? throw new ArgumentException("--role gateway needs --upstream") };
        using var upstreamBackend = UpstreamBackends.Create(upstreamOptions, settings.UpstreamClient == "sockets" ? UpstreamClient.Sockets : UpstreamClient.HttpClient);
        var backend = new SentStamp(upstreamBackend);
        var options = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], MaxConcurrentStreams = 100_000, Tokens = settings.Auth ? [Settings.BenchToken] : [] };
        options.InlineSocketScheduling = settings.InlineScheduling;
        await using var gateway = GatewayHost.Build(
            options,
            backend,
            agent: null,
            configureServices: services => services.AddSingleton<IStartupFilter, EntryStamp>(),
            configureLogging: l => l.SetMinimumLevel(LogLevel.Error));
        await gateway.StartAsync();
        await ServeAsync(GatewayHost.Addresses(gateway)[0], phases);
        await gateway.StopAsync();
    }

    private static async Task ServeAsync(Uri address, PhaseRecorder? phases, Func<ProcessStats>? stats = null)
    {
        Console.WriteLine($"listening {address}");
        while (await Console.In.ReadLineAsync() is { } line && line != "quit")
        {
            Console.WriteLine(line switch
            {
                "stats" => (stats ?? ProcessStats.Current)().ToString(),
                "heap" => string.Create(CultureInfo.InvariantCulture, $"heap {GC.GetTotalMemory(forceFullCollection: true)}"),
                "phases" => "phases " + (phases?.Take() ?? ""),
                _ => "unknown " + line,
            });
        }
    }
}

/// <summary>
/// Collects the gateway's <c>privateml.gateway.first_byte</c> measurements (one per phase per request) through a
/// <see cref="MeterListener"/>, for exact percentiles.
/// </summary>
internal sealed class PhaseRecorder : IDisposable
{
    private static readonly string[] Phases = ["request_read", "upstream_headers", "upstream_first_byte", "client_first_byte"];
    private readonly MeterListener _listener = new();
    private readonly List<double>[] _samples = [[], [], [], [], []]; // the four phases, then sign + store

    public PhaseRecorder()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "PrivateMl.Gateway" && instrument.Name is "privateml.gateway.first_byte" or "privateml.gateway.signing")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "privateml.gateway.signing")
            {
                lock (_samples)
                {
                    _samples[^1].Add(value * 1000);
                }

                return;
            }

            foreach (var tag in tags)
            {
                var index = tag.Key == "phase" && tag.Value is string phase ? Array.IndexOf(Phases, phase) : -1;
                if (index >= 0)
                {
                    lock (_samples)
                    {
                        _samples[index].Add(value * 1000);
                    }
                }
            }
        });
        _listener.Start();
    }

    /// <summary>"n | p50/p99 | …" (ms) per phase since the last call, then forgets them.</summary>
    public string Take()
    {
        double[][] sorted;
        lock (_samples)
        {
            sorted = [.. _samples.Select(s => s.Order().ToArray())];
            foreach (var s in _samples)
            {
                s.Clear();
            }
        }

        return sorted[0].Length + " | " + string.Join(" | ", sorted.Select(s =>
            string.Create(CultureInfo.InvariantCulture, $"{RunResult.Percentile(s, 0.5):0.000}/{RunResult.Percentile(s, 0.99):0.000}")));
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>
/// A vLLM-like streaming endpoint. The pause before each token event comes from the request body's
/// <c>bench_interval_ms</c> member when present (the side-by-side run), else <see cref="IntervalMs"/> (0 = unpaced).
/// </summary>
internal sealed class SyntheticUpstream(WebApplication app, PreciseTimer? firstTokenTimer) : IAsyncDisposable
{
    public Uri Address { get; private set; } = null!;

    /// <summary>Pause before each token event when the request names none; set per scenario.</summary>
    public static int IntervalMs { get; set; }

    public static async Task<SyntheticUpstream> StartAsync(int tokens)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MinResponseDataRate = null);
        var app = builder.Build();
        var final = Encoding.UTF8.GetBytes(
            $"data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":4,\"completion_tokens\":{tokens},\"total_tokens\":{tokens + 4}}}}}\n\n");
        var done = "data: [DONE]\n\n"u8.ToArray();
        var timer = PreciseTimer.TryCreate();
        app.MapPost("/v1/chat/completions", async context =>
        {
            var arrived = Stopwatch.GetTimestamp();
            var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var interval = ReadInterval(body.GetBuffer().AsSpan(0, (int)body.Length)) ?? IntervalMs;
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync();
            for (var i = 0; i < tokens; i++)
            {
                if (interval > 0 && i == 0 && timer is not null)
                {
                    // The first token leaves at arrival + interval exactly, so that TTFB differs between paths only by
                    // their transit (PreciseTimer says why).
                    await timer.WaitUntilAsync(arrived + interval * Stopwatch.Frequency / 1000);
                }
                else if (interval > 0)
                {
                    await Task.Delay(interval);
                }

                // Every token event carries when it left on the machine's monotonic clock (bench_s), the first also
                // when the request reached this handler (bench_t), so that the load generator can subtract the
                // upstream's own time and see how late each token is delivered.
                await context.Response.Body.WriteAsync(TokenEvent(i, i == 0 ? arrived : null, Stopwatch.GetTimestamp()));
                await context.Response.Body.FlushAsync();
            }

            await context.Response.Body.WriteAsync(final);
            await context.Response.Body.WriteAsync(done);
        });
        await app.StartAsync();
        return new SyntheticUpstream(app, timer) { Address = new Uri(app.Urls.First()) };
    }

    private static byte[] TokenEvent(int index, long? arrived, long sent) => Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
        $"data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",{(arrived is { } a ? $"\"bench_t\":\"{a}\"," : "")}\"bench_s\":\"{sent}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{index} \"}},\"finish_reason\":null}}]}}\n\n"));

    /// <summary>The top-level <c>bench_interval_ms</c> number of a JSON body, if any.</summary>
    private static int? ReadInterval(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isInterval = reader.ValueTextEquals("bench_interval_ms"u8);
                reader.Read();
                if (isInterval && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var ms) && ms >= 0)
                {
                    return ms;
                }

                reader.TrySkip();
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        firstTokenTimer?.Dispose();
    }
}

/// <summary>
/// The yardstick for what any .NET HTTP proxy costs: Kestrel and a pooled <see cref="SocketsHttpHandler"/> copying the
/// request body up and every upstream read down with a flush — no auth, no hashing, no signing, no metrics. The gateway
/// minus this is what its own features cost; this minus direct is the price of an HTTP hop on the machine.
/// </summary>
internal sealed class BareProxy(WebApplication app, HttpMessageInvoker invoker) : IAsyncDisposable
{
    public Uri Address { get; private init; } = null!;

    public static async Task<BareProxy> StartAsync(Uri upstream, bool inlineScheduling)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>(sockets => sockets.UnsafePreferInlineScheduling = inlineScheduling);
        builder.Services.AddSingleton<IStartupFilter, EntryStamp>();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MinResponseDataRate = null;
        });
        var app = builder.Build();
        var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 4096,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            UseCookies = false,
            UseProxy = false,
            AllowAutoRedirect = false,
        });
        var target = new Uri(upstream, "/v1/chat/completions");
        app.MapPost("/v1/chat/completions", async context =>
        {
            var length = context.Request.ContentLength ?? -1;
            if (length is < 0 or > 1 << 20)
            {
                context.Response.StatusCode = StatusCodes.Status411LengthRequired;
                return;
            }

            var body = new byte[length];
            await context.Request.Body.ReadExactlyAsync(body, context.RequestAborted);
            using var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await invoker.SendAsync(request, context.RequestAborted);
            context.Response.StatusCode = (int)response.StatusCode;
            context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
            await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(16 * 1024);
            try
            {
                int read;
                while ((read = await stream.ReadAsync(buffer, context.RequestAborted)) > 0)
                {
                    await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        });
        await app.StartAsync();
        return new BareProxy(app, invoker) { Address = new Uri(app.Urls.First()) };
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        invoker.Dispose();
    }
}

/// <summary>
/// nginx as the yardstick (<c>--yardstick nginx</c>): one process, one event loop, upstream keep-alive, no buffering
/// either way — what a C reverse proxy pays for the same hop on this machine, so that a .NET proxy's price can be told
/// from the machine's. Its CPU is read from the process; it allocates nothing managed.
/// </summary>
internal sealed class NginxProxy(Process process, string prefix) : IAsyncDisposable
{
    public Uri Address { get; private init; } = null!;

    public ProcessStats Stats()
    {
        process.Refresh();
        return new ProcessStats(process.TotalProcessorTime.TotalMicroseconds, 0);
    }

    public static async Task<NginxProxy> StartAsync(Uri upstream)
    {
        // BENCH_NGINX names a binary carried to a machine without a package manager (the GPU host).
        var binary = new[] { Environment.GetEnvironmentVariable("BENCH_NGINX"), "/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("--yardstick nginx needs nginx (apt-get install nginx-light, or BENCH_NGINX=/path/to/nginx)");
        var prefix = Directory.CreateTempSubdirectory("gwbench-nginx-").FullName;
        var port = FreePort();
        var config = Path.Combine(prefix, "nginx.conf");
        File.WriteAllText(config, string.Create(CultureInfo.InvariantCulture, $$"""
            daemon off;
            master_process off;
            worker_processes 1;
            pid {{prefix}}/nginx.pid;
            error_log stderr error;
            events { worker_connections 65536; multi_accept on; }
            http {
                access_log off;
                client_body_temp_path {{prefix}}/body;
                proxy_temp_path {{prefix}}/proxy;
                fastcgi_temp_path {{prefix}}/fastcgi;
                uwsgi_temp_path {{prefix}}/uwsgi;
                scgi_temp_path {{prefix}}/scgi;
                keepalive_requests 1000000;
                tcp_nodelay on;
                client_body_buffer_size 1m;
                upstream model { server {{upstream.Host}}:{{upstream.Port}}; keepalive 4096; keepalive_requests 1000000; }
                server {
                    listen 127.0.0.1:{{port}} backlog=4096;
                    location / {
                        proxy_pass http://model;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                        proxy_read_timeout 300s;
                    }
                }
            }
            """));
        var start = new ProcessStartInfo(binary) { UseShellExecute = false, RedirectStandardError = false };
        foreach (var arg in new[] { "-e", "stderr", "-p", prefix, "-c", config })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("nginx did not start");
        for (var tries = 0; ; tries++)
        {
            try
            {
                using var probe = new System.Net.Sockets.TcpClient();
                await probe.ConnectAsync(System.Net.IPAddress.Loopback, port);
                break;
            }
            catch (System.Net.Sockets.SocketException) when (tries < 100 && !process.HasExited)
            {
                await Task.Delay(50);
            }
        }

        return new NginxProxy(process, prefix) { Address = new Uri($"http://127.0.0.1:{port}/") };
    }

    private static int FreePort()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        process.Dispose();
        Directory.Delete(prefix, recursive: true);
    }
}

/// <summary>
/// The first middleware of both .NET proxies: stamps when the request entered the app (<see cref="Stopwatch"/>, the
/// machine's monotonic clock, as the upstream's stamps) into a response header, so the load generator can split the
/// out leg at the proxy.
/// </summary>
internal sealed class EntryStamp : IStartupFilter
{
    public const string Header = "x-bench-entered";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((context, then) =>
        {
            context.Response.Headers[Header] = Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture);
            SentStamp.Request.Value = context;
            return then(context);
        });
        next(app);
    };
}

/// <summary>
/// The gateway's backend in the bench: stamps when the upstream client returned from its send (for the sockets client
/// the request is then in the kernel) into a response header, so the load generator can split the onward part of the
/// out leg into the gateway's own work and the upstream's wake-up. The relay starts the response only after the
/// upstream's headers, so the header is set in time.
/// </summary>
internal sealed class SentStamp(IInferenceBackend inner) : IInferenceBackend
{
    public const string Header = "x-bench-sent";

    /// <summary>The request this flow serves (set by <see cref="EntryStamp"/>).</summary>
    public static readonly AsyncLocal<HttpContext?> Request = new();

    public string Name => inner.Name;

    public Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken)
    {
        var sending = inner.SendAsync(request, cancellationToken);
        if (Request.Value is { } context && request.PathAndQuery.EndsWith("/completions", StringComparison.Ordinal))
        {
            context.Response.Headers[Header] = Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture);
        }

        return sending;
    }
}
