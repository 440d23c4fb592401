using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Aci;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.Gateway;
using PrivateMl.Gateway.Keyset;
using PrivateMl.Inference.Upstream;

/// <summary>
/// <c>--e2ee</c>: plaintext vs ACI E2EE v2 (both suites) vs EHBP through the same gateway, side by side in one run,
/// closed loop at <c>--e2ee-streams</c> (16) concurrent streams, paced (<c>--interval-ms</c>) and unpaced. Each client
/// does its mode's whole job per request: a fresh key, nonce and timestamp, encrypting the prompt, decrypting every
/// chunk and counting tokens and <c>[DONE]</c> (a miss is an error). Prints sample counts with every figure.
/// <c>PRIVATEML_BENCH_E2EE_MODES=secp256k1</c> runs a subset; <c>--skip-paced</c> / <c>--skip-unpaced</c> as for the main bench.
/// </summary>
internal static class E2eeSideBySide
{
    /// <summary>Runs a subset of the modes (comma-separated words of their names); an environment variable, so the option parser stays as it is.</summary>
    private const string ModesVariable = "PRIVATEML_BENCH_E2EE_MODES";

    private static readonly byte[] Plain = "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"hi, a private question\"}],\"stream\":true}"u8.ToArray();

    public static async Task RunAsync(Settings settings)
    {
        var streams = settings.E2eeStreams;
        var rounds = settings.RoundsOr(3);
        await using var upstream = await SyntheticUpstream.StartAsync(settings.Tokens);
        using var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = upstream.Address });
        await using var gateway = GatewayHost.Build(
            new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], MaxConcurrentStreams = 100_000 },
            backend,
            agent: null,
            configureLogging: l => l.SetMinimumLevel(LogLevel.Error));
        await gateway.StartAsync();
        var address = GatewayHost.Addresses(gateway)[0];
        var keyset = gateway.Services.GetRequiredService<GatewayKeysetHolder>().Keyset.Public;
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 100_000, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
        {
            Timeout = TimeSpan.FromMinutes(5),
        };

        var modes = new List<(string Name, Func<Uri, byte[], Task<Outcome>> Once)>
        {
            ("plaintext", (uri, buffer) => PlaintextOnceAsync(client, uri, buffer)),
            ("aci x25519", (uri, buffer) => AciOnceAsync(client, uri, buffer, keyset, AciSuite.X25519)),
            ("aci secp256k1", (uri, buffer) => AciOnceAsync(client, uri, buffer, keyset, AciSuite.Secp256k1)),
            ("ehbp", (uri, buffer) => EhbpOnceAsync(client, uri, buffer, keyset)),
        };

        if (Environment.GetEnvironmentVariable(ModesVariable) is { Length: > 0 } only)
        {
            // e.g. PRIVATEML_BENCH_E2EE_MODES=secp256k1: modes whose name contains one of the words (plaintext is always kept as the baseline).
            var words = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            modes.RemoveAll(m => m.Name != "plaintext" && !words.Any(w => m.Name.Contains(w, StringComparison.OrdinalIgnoreCase)));
        }

        Console.WriteLine($"# E2EE side by side: {Environment.ProcessorCount} cores, .NET {Environment.Version}, {streams} concurrent streams, {settings.Tokens} tokens/stream, {rounds} interleaved rounds per mode");
        Console.WriteLine($"# secp256k1 backend: {AciSuites.Secp256k1Implementation} (set {AciSuites.Secp256k1ImplementationVariable}=managed to force the managed port); load average at start: {LoadAverage()}");
        Console.WriteLine($"# command line: {string.Join(' ', Environment.GetCommandLineArgs().Skip(1))}{(Environment.GetEnvironmentVariable(ModesVariable) is { Length: > 0 } subset ? $" ({ModesVariable}={subset})" : string.Empty)}");
        var intervals = new List<int>();
        if (!settings.SkipPaced)
        {
            intervals.Add(settings.IntervalMs);
        }

        if (!settings.SkipUnpaced)
        {
            intervals.Add(0);
        }

        foreach (var interval in intervals)
        {
            SyntheticUpstream.IntervalMs = interval;
            Console.WriteLine(interval > 0
                ? $"\n## paced: one token every {interval} ms, {settings.Seconds} s per run"
                : $"\n## unpaced: upstream as fast as it can, {settings.UnpacedSeconds} s per run");
            Console.WriteLine("| mode | requests | tok/s | vs plaintext | TTFB p50/p99 ms | latency p50/p99 ms | CPU µs/request | errors |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|");
            foreach (var (_, once) in modes)
            {
                await RunModeAsync(once, address, streams, TimeSpan.FromSeconds(1), settings.Tokens); // warm-up
            }

            // Rounds interleave the modes so that load drifting on a shared machine hits them alike.
            var totals = modes.ToDictionary(m => m.Name, _ => new List<RunStats>());
            var seconds = interval > 0 ? settings.Seconds : settings.UnpacedSeconds;
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, once) in modes)
                {
                    totals[name].Add(await RunModeAsync(once, address, streams, TimeSpan.FromSeconds(seconds / (double)rounds), settings.Tokens));
                }
            }

            var baseline = RunStats.Merge(totals["plaintext"]);
            foreach (var (name, _) in modes)
            {
                var m = RunStats.Merge(totals[name]);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {m.Requests} | {m.TokensPerSecond:0} | {m.TokensPerSecond / baseline.TokensPerSecond * 100:0.00} % | {m.Percentile(m.Ttfb, 0.5):0.00}/{m.Percentile(m.Ttfb, 0.99):0.00} | {m.Percentile(m.Latency, 0.5):0.00}/{m.Percentile(m.Latency, 0.99):0.00} | {m.CpuMicros / Math.Max(1, m.Requests):0} | {m.Errors} |"));
            }
        }

        Console.WriteLine($"\n# load average at end: {LoadAverage()}");
        await gateway.StopAsync();
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    private sealed record Outcome(bool Ok, int Tokens, double TtfbMs, double LatencyMs);

    private sealed record RunStats(double Seconds, long Requests, long Tokens, long Errors, double CpuMicros, List<double> Ttfb, List<double> Latency)
    {
        public double TokensPerSecond => Tokens / Seconds;

        public double Percentile(List<double> values, double p)
        {
            var sorted = values.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
        }

        public static RunStats Merge(List<RunStats> runs) => new(
            runs.Sum(r => r.Seconds), runs.Sum(r => r.Requests), runs.Sum(r => r.Tokens), runs.Sum(r => r.Errors), runs.Sum(r => r.CpuMicros),
            [.. runs.SelectMany(r => r.Ttfb)], [.. runs.SelectMany(r => r.Latency)]);
    }

    private static async Task<RunStats> RunModeAsync(Func<Uri, byte[], Task<Outcome>> once, Uri address, int concurrency, TimeSpan duration, int expectedTokens)
    {
        var uri = new Uri(address, "/v1/chat/completions");
        long requests = 0, tokens = 0, errors = 0;
        var ttfb = new List<double>[concurrency];
        var latency = new List<double>[concurrency];
        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            ttfb[w] = [];
            latency[w] = [];
            var buffer = new byte[16 * 1024];
            while (clock.Elapsed < duration)
            {
                try
                {
                    var outcome = await once(uri, buffer);
                    if (!outcome.Ok || outcome.Tokens != expectedTokens)
                    {
                        Interlocked.Increment(ref errors);
                        continue;
                    }

                    ttfb[w].Add(outcome.TtfbMs);
                    latency[w].Add(outcome.LatencyMs);
                    Interlocked.Add(ref tokens, outcome.Tokens);
                    Interlocked.Increment(ref requests);
                }
                catch (Exception e) when (e is HttpRequestException or IOException or AciE2eeException or AttestationException or JsonException or InvalidDataException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        return new RunStats(clock.Elapsed.TotalSeconds, requests, tokens, errors, (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalMicroseconds,
            [.. ttfb.SelectMany(l => l)], [.. latency.SelectMany(l => l)]);
    }

    private static async Task<Outcome> PlaintextOnceAsync(HttpClient client, Uri uri, byte[] buffer)
    {
        var started = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(Plain) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var tokens = 0;
        var done = false;
        var splitter = new AciSseSplitter((_, data, _) =>
        {
            if (data == "[DONE]")
            {
                done = true;
            }
            else if (data is not null && data.Contains("\"content\"", StringComparison.Ordinal))
            {
                tokens++;
            }
        });
        var (ok, ttfb) = await ReadAsync(client, request, buffer, splitter, started);
        return new Outcome(ok && done, tokens, ttfb, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static async Task<Outcome> AciOnceAsync(HttpClient client, Uri uri, byte[] buffer, WorkloadKeyset keyset, AciSuite suite)
    {
        var started = Stopwatch.GetTimestamp();
        var service = keyset.E2eePublicKeys.First(k => k.Algo == suite.Algo());
        using var clientKey = AciPrivateKey.Create(suite);
        var context = new AciExchangeContext(suite, "bench", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        var body = AciPayload.ParseBody(Plain, out _)!;
        AciPayload.EncryptRequest(body, AciPayload.ChatEndpoint, context, suite.ParsePublicKey(service.PublicKey));
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(AciPayload.Serialize(body)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add(AciHeaders.Version, AciHeaders.V2);
        request.Headers.Add(AciHeaders.ClientPublicKey, clientKey.PublicKeyHex);
        request.Headers.Add(AciHeaders.ModelPublicKey, service.PublicKey);
        request.Headers.Add(AciHeaders.Nonce, context.Nonce);
        request.Headers.Add(AciHeaders.Timestamp, context.Timestamp.ToString(CultureInfo.InvariantCulture));
        var tokens = 0;
        var done = false;
        var splitter = new AciSseSplitter((_, data, _) =>
        {
            if (data == "[DONE]")
            {
                done = true;
                return;
            }

            if (data is null || JsonNode.Parse(data) is not JsonObject chunk)
            {
                return;
            }

            AciPayload.DecryptResponse(chunk, AciPayload.ChatEndpoint, true, context, clientKey);
            if (chunk["choices"]?[0]?["delta"]?["content"] is JsonValue)
            {
                tokens++;
            }
        });
        var (ok, ttfb) = await ReadAsync(client, request, buffer, splitter, started);
        return new Outcome(ok && done, tokens, ttfb, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>EHBP: a fresh HPKE context per request, the body sealed in frames, every answer frame opened as it arrives.</summary>
    private static async Task<Outcome> EhbpOnceAsync(HttpClient client, Uri uri, byte[] buffer, WorkloadKeyset keyset)
    {
        var started = Stopwatch.GetTimestamp();
        var key = Convert.FromHexString(keyset.E2eePublicKeys.First(k => k.Algo == EhbpProtocol.KeysetAlgorithm).PublicKey);
        using var exchange = EhbpClientExchange.Create(key, Random);
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(exchange.SealBody(Plain)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add(EhbpProtocol.EncapsulatedKeyHeader, exchange.EncapsulatedKeyHeader);
        var tokens = 0;
        var done = false;
        var splitter = new AciSseSplitter((_, data, _) =>
        {
            if (data == "[DONE]")
            {
                done = true;
            }
            else if (data is not null && data.Contains("\"content\"", StringComparison.Ordinal))
            {
                tokens++;
            }
        });
        var (ok, ttfb) = await ReadAsync(client, request, buffer, splitter, started, (response, stream) =>
        {
            var nonce = response.Headers.TryGetValues(EhbpProtocol.ResponseNonceHeader, out var values) ? values.First() : null;
            return new EhbpDecryptingStream(stream, exchange.OpenResponse(nonce), 1024 * 1024);
        });
        return new Outcome(ok && done, tokens, ttfb, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static readonly RandomNumberGenerator Random = RandomNumberGenerator.Create();

    private static async Task<(bool Ok, double TtfbMs)> ReadAsync(
        HttpClient client, HttpRequestMessage request, byte[] buffer, AciSseSplitter splitter, long started, Func<HttpResponseMessage, Stream, Stream>? open = null)
    {
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStreamAsync();
        await using var stream = open is null ? body : open(response, body);
        var sink = new ArrayBufferWriter<byte>();
        var ttfb = double.NaN;
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            if (double.IsNaN(ttfb))
            {
                ttfb = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }

            splitter.Feed(buffer.AsSpan(0, read), sink);
        }

        splitter.Complete(sink);
        return (response.IsSuccessStatusCode, ttfb);
    }
}
