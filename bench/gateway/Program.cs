using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway;
using PrivateMl.Inference.Upstream;

// Side-by-side gateway benchmark (issue 5): one synthetic OpenAI-compatible streaming upstream on loopback, the
// gateway in front of it, and a load generator that checks every stream's token count and [DONE]. Each scenario runs
// direct and through the gateway back to back in one process.
//   dotnet run -c Release --project bench/gateway -- [--tokens 64] [--interval-ms 10] [--levels 1,16,128]
//       [--seconds 10] [--min-requests 200] [--rounds 4] [--unpaced-concurrency 32] [--unpaced-seconds 10]
//       [--skip-paced] [--skip-unpaced]
// Every figure is printed with its sample count n.
var settings = Settings.Parse(args);
if (args.Contains("--e2ee"))
{
    await E2eeSideBySide.RunAsync(settings, args);
    return;
}

if (args.Contains("--signing"))
{
    SigningCost.Print();
    return;
}

await using var upstream = await SyntheticUpstream.StartAsync(settings.Tokens);
using var backend = new UpstreamHttpBackend(new UpstreamHttpBackendOptions { BaseAddress = upstream.Address });
await using var gateway = GatewayHost.Build(
    new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], MaxConcurrentStreams = 100_000 },
    backend,
    agent: null,
    configureLogging: l => l.SetMinimumLevel(LogLevel.Error));
await gateway.StartAsync();
var gatewayAddress = GatewayHost.Addresses(gateway)[0];
using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 100_000, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
{
    Timeout = TimeSpan.FromMinutes(5),
};

Console.WriteLine($"# gateway bench: {Environment.ProcessorCount} cores, .NET {Environment.Version}, tokens/stream {settings.Tokens}, load average at start: {LoadAverage()}");
Console.WriteLine($"# command line: {string.Join(' ', args)}");
if (!settings.SkipPaced)
{
    Console.WriteLine($"\n## paced: one token every {settings.IntervalMs} ms; per level at least {settings.Seconds} s and {settings.MinRequests} requests per path, direct and gateway alternating in {settings.Rounds} rounds each");
    Console.WriteLine("| streams | n direct/gateway (requests = TTFB samples) | direct tok/s | gateway tok/s | ratio | direct TTFB p50/p99 ms | gateway TTFB p50/p99 ms | added p50/p99 ms | errors |");
    Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
    foreach (var level in settings.Levels)
    {
        await LoadGenerator.RunAsync(client, upstream.Address, level, TimeSpan.FromSeconds(1), 0, settings.IntervalMs, settings.Tokens); // warm-up
        await LoadGenerator.RunAsync(client, gatewayAddress, level, TimeSpan.FromSeconds(1), 0, settings.IntervalMs, settings.Tokens);

        // Alternate direct and gateway so that a change in the machine's load hits both paths alike.
        var roundTime = TimeSpan.FromSeconds((double)settings.Seconds / settings.Rounds);
        var roundRequests = (settings.MinRequests + settings.Rounds - 1) / settings.Rounds;
        var direct = RunResult.Empty;
        var through = RunResult.Empty;
        for (var round = 0; round < settings.Rounds; round++)
        {
            direct += await LoadGenerator.RunAsync(client, upstream.Address, level, roundTime, roundRequests, settings.IntervalMs, settings.Tokens);
            through += await LoadGenerator.RunAsync(client, gatewayAddress, level, roundTime, roundRequests, settings.IntervalMs, settings.Tokens);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {level} | {direct.Requests}/{through.Requests} | {direct.TokensPerSecond:0} | {through.TokensPerSecond:0} | {through.TokensPerSecond / direct.TokensPerSecond * 100:0.00} % | {direct.TtfbP50:0.000}/{direct.TtfbP99:0.000} | {through.TtfbP50:0.000}/{through.TtfbP99:0.000} | {through.TtfbP50 - direct.TtfbP50:0.000}/{through.TtfbP99 - direct.TtfbP99:0.000} | {direct.Errors}+{through.Errors} |"));
    }
}

if (!settings.SkipUnpaced)
{
    Console.WriteLine($"\n## unpaced: upstream as fast as it can, {settings.UnpacedConcurrency} concurrent streams, {settings.UnpacedSeconds} s per run");
    Console.WriteLine("| path | n (requests) | requests/s | SSE chunks/s | CPU µs/request | CPU µs/chunk | allocated bytes/request | errors |");
    Console.WriteLine("|---|---|---|---|---|---|---|---|");
    await LoadGenerator.RunAsync(client, upstream.Address, settings.UnpacedConcurrency, TimeSpan.FromSeconds(1), 0, 0, settings.Tokens);
    await LoadGenerator.RunAsync(client, gatewayAddress, settings.UnpacedConcurrency, TimeSpan.FromSeconds(1), 0, 0, settings.Tokens);
    var direct = await LoadGenerator.RunAsync(client, upstream.Address, settings.UnpacedConcurrency, TimeSpan.FromSeconds(settings.UnpacedSeconds), 0, 0, settings.Tokens);
    var through = await LoadGenerator.RunAsync(client, gatewayAddress, settings.UnpacedConcurrency, TimeSpan.FromSeconds(settings.UnpacedSeconds), 0, 0, settings.Tokens);
    foreach (var (name, r) in new[] { ("direct (upstream + load generator)", direct), ("through gateway (all three)", through) })
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {r.Requests} | {r.RequestsPerSecond:0} | {r.ChunksPerSecond:0} | {r.CpuMicrosPerRequest:0.0} | {r.CpuMicrosPerRequest / (settings.Tokens + 2):0.00} | {r.AllocatedPerRequest:0} | {r.Errors} |"));
    }

    // What the gateway itself adds: the difference between the two runs, per request.
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| **gateway's own share** | {direct.Requests}/{through.Requests} | — | — | {through.CpuMicrosPerRequest - direct.CpuMicrosPerRequest:0.0} | {(through.CpuMicrosPerRequest - direct.CpuMicrosPerRequest) / (settings.Tokens + 2):0.00} | {through.AllocatedPerRequest - direct.AllocatedPerRequest:0} | |"));
}

Console.WriteLine($"\n# load average at end: {LoadAverage()}");
var metrics = await client.GetStringAsync(new Uri(gatewayAddress, "/v1/metrics"));
Console.WriteLine("\n## gateway's own metrics after the runs\n```");
foreach (var line in metrics.Split('\n').Where(l => l.StartsWith("privateml_gateway_", StringComparison.Ordinal)))
{
    Console.WriteLine(line);
}

Console.WriteLine("```");
await gateway.StopAsync();

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

internal sealed record Settings(int Tokens, int IntervalMs, int[] Levels, int Seconds, int MinRequests, int Rounds, int UnpacedConcurrency, int UnpacedSeconds, bool SkipPaced, bool SkipUnpaced)
{
    public static Settings Parse(string[] args)
    {
        string? Value(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        int Int(string name, int fallback) => Value(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new Settings(
            Int("--tokens", 64),
            Int("--interval-ms", 10),
            (Value("--levels") ?? "1,16,128").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(),
            Int("--seconds", 10),
            Int("--min-requests", 200),
            Math.Max(1, Int("--rounds", 4)),
            Int("--unpaced-concurrency", 32),
            Int("--unpaced-seconds", 10),
            args.Contains("--skip-paced"),
            args.Contains("--skip-unpaced"));
    }
}

/// <summary>A vLLM-like streaming endpoint: <c>interval</c> (request body member) ms between token events; 0 = unpaced.</summary>
internal sealed class SyntheticUpstream(WebApplication app) : IAsyncDisposable
{
    public Uri Address { get; private set; } = null!;

    /// <summary>Pause before each token event (0 = unpaced); set per scenario.</summary>
    public static int IntervalMs { get; set; }

    public static async Task<SyntheticUpstream> StartAsync(int tokens)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MinResponseDataRate = null);
        var app = builder.Build();
        var events = new byte[tokens][];
        for (var i = 0; i < tokens; i++)
        {
            events[i] = Encoding.UTF8.GetBytes(
                $"data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}},\"finish_reason\":null}}]}}\n\n");
        }

        var final = Encoding.UTF8.GetBytes(
            $"data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":4,\"completion_tokens\":{tokens},\"total_tokens\":{tokens + 4}}}}}\n\n");
        var done = "data: [DONE]\n\n"u8.ToArray();
        app.MapPost("/v1/chat/completions", async context =>
        {
            var interval = IntervalMs;
            await context.Request.Body.CopyToAsync(Stream.Null);
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync();
            foreach (var e in events)
            {
                if (interval > 0)
                {
                    await Task.Delay(interval);
                }

                await context.Response.Body.WriteAsync(e);
                await context.Response.Body.FlushAsync();
            }

            await context.Response.Body.WriteAsync(final);
            await context.Response.Body.WriteAsync(done);
        });
        await app.StartAsync();
        return new SyntheticUpstream(app) { Address = new Uri(app.Urls.First()) };
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }
}

internal sealed record RunResult(double Seconds, long Requests, long Tokens, long Chunks, long Errors, double[] Ttfbs, double CpuMicros, long Allocated)
{
    public static RunResult Empty { get; } = new(0, 0, 0, 0, 0, [], 0, 0);

    public double TokensPerSecond => Tokens / Seconds;

    public double RequestsPerSecond => Requests / Seconds;

    public double ChunksPerSecond => Chunks / Seconds;

    public double CpuMicrosPerRequest => CpuMicros / Math.Max(1, Requests);

    public double AllocatedPerRequest => (double)Allocated / Math.Max(1, Requests);

    /// <summary>Time to first byte percentiles (ms) over every completed request of the run (<see cref="Ttfbs"/> is sorted).</summary>
    public double TtfbP50 => Percentile(0.50);

    public double TtfbP99 => Percentile(0.99);

    private double Percentile(double p) => Ttfbs.Length == 0 ? double.NaN : Ttfbs[Math.Min(Ttfbs.Length - 1, (int)(p * Ttfbs.Length))];

    /// <summary>Two runs of the same path as one (rounds of an alternating comparison).</summary>
    public static RunResult operator +(RunResult a, RunResult b) => new(
        a.Seconds + b.Seconds, a.Requests + b.Requests, a.Tokens + b.Tokens, a.Chunks + b.Chunks, a.Errors + b.Errors,
        [.. a.Ttfbs.Concat(b.Ttfbs).Order()], a.CpuMicros + b.CpuMicros, a.Allocated + b.Allocated);
}

/// <summary>
/// Closed-loop load: <c>concurrency</c> workers each send streaming requests back to back until the duration has
/// passed and at least <c>minRequests</c> requests have completed. Only completed, checked requests give TTFB samples.
/// </summary>
internal static class LoadGenerator
{
    private static readonly byte[] Body = "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}"u8.ToArray();

    public static async Task<RunResult> RunAsync(HttpClient client, Uri baseAddress, int concurrency, TimeSpan duration, int minRequests, int intervalMs, int expectedTokens)
    {
        SyntheticUpstream.IntervalMs = intervalMs;
        var uri = new Uri(baseAddress, "/v1/chat/completions");
        long requests = 0, tokens = 0, chunks = 0, errors = 0;
        var ttfbs = new List<double>[concurrency];
        GC.Collect();
        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        var allocatedStart = GC.GetTotalAllocatedBytes(precise: false);
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var local = ttfbs[w] = [];
            var buffer = new byte[16 * 1024];
            while (clock.Elapsed < duration || Interlocked.Read(ref requests) + Interlocked.Read(ref errors) < minRequests)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(Body) };
                    request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    await using var stream = await response.Content.ReadAsStreamAsync();
                    var counter = new EventCounter();
                    var first = true;
                    var ttfb = 0.0;
                    int read;
                    while ((read = await stream.ReadAsync(buffer)) > 0)
                    {
                        if (first)
                        {
                            ttfb = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                            first = false;
                        }

                        Interlocked.Increment(ref chunks);
                        counter.Feed(buffer.AsSpan(0, read));
                    }

                    if (!response.IsSuccessStatusCode || counter.Tokens != expectedTokens || !counter.Done)
                    {
                        Interlocked.Increment(ref errors);
                        continue;
                    }

                    local.Add(ttfb);
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
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalMicroseconds;
        var allocated = GC.GetTotalAllocatedBytes(precise: false) - allocatedStart;
        return new RunResult(seconds, requests, tokens, chunks, errors, [.. ttfbs.SelectMany(l => l).Order()], cpu, allocated);
    }

    /// <summary>Counts content events (those with "content") and notices [DONE], across read boundaries.</summary>
    private sealed class EventCounter
    {
        private readonly StringBuilder _line = new();

        public int Tokens { get; private set; }

        public bool Done { get; private set; }

        public void Feed(ReadOnlySpan<byte> bytes)
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
                }
            }
        }
    }
}

/// <summary>Per-response signing cost, piece by piece (<c>--signing</c>).</summary>
internal static class SigningCost
{
    public static void Print()
    {
        using var keys = PrivateMl.Gateway.Signing.GatewaySigningKeys.CreateRandom(System.Security.Cryptography.RandomNumberGenerator.Create());
        var text = new string('a', 64) + ":" + new string('b', 64);
        var ecdsa = keys.EcdsaKey.PersonalSign(text);
        Time("EIP-191 personal_sign (secp256k1, native libsecp256k1)", () => keys.EcdsaKey.PersonalSign(text));
        Time("Ed25519 sign (NSec)", () => keys.Ed25519Key.SignText(text));
        Time("receipt (canonical JSON + Ed25519)", () => PrivateMl.Gateway.Receipts.SignedReceipt.Create(
            keys, "pml-x", "chatcmpl-x", "model", "/v1/chat/completions", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, new string('a', 64), new string('b', 64), ecdsa));
    }

    private static void Time(string name, Action action)
    {
        for (var i = 0; i < 200; i++)
        {
            action();
        }

        const int n = 2000;
        Console.Write($"n={n} ");
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            action();
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: {clock.Elapsed.TotalMicroseconds / n:0.0} µs wall, {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds / n:0.0} µs CPU"));
    }
}
