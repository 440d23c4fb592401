using System.Diagnostics;
using System.Globalization;

// Side-by-side gateway benchmark (issue 5). Three processes: a synthetic OpenAI-compatible streaming upstream, the
// gateway in front of it (both children of this process) and this process as the load generator, which checks every
// stream's token count and [DONE]. Direct and gateway runs use the same load generator and the same upstream and
// alternate in rounds; CPU is reported per process and every figure with its sample count n.
//   dotnet bench/gateway/bin/Release/net10.0/PrivateMl.Gateway.Bench.dll [options]   (--help lists them)
if (args is ["--help"] or ["-h"])
{
    Console.WriteLine(Settings.Usage);
    return 0;
}

var settings = Settings.Parse(args, out var error);
if (settings is null)
{
    Console.Error.WriteLine(error);
    Console.Error.WriteLine(Settings.Usage);
    return 2;
}

if (settings.Role is not null)
{
    await BenchChild.RunAsync(settings);
    return 0;
}

if (settings.E2ee)
{
    await E2eeSideBySide.RunAsync(settings);
    return 0;
}

if (settings.Signing)
{
    SigningCost.Print();
    return 0;
}

await SideBySide.RunAsync(settings, args);
return 0;

/// <summary>The paced and unpaced side-by-side runs.</summary>
internal static class SideBySide
{
    public static async Task RunAsync(Settings settings, string[] args)
    {
        await using var upstream = await BenchPeer.StartAsync("upstream", settings, null);
        await using var gateway = await BenchPeer.StartAsync("gateway", settings, upstream.Address);
        await using var bare = settings.BareProxy ? await BenchPeer.StartAsync("bare", settings, upstream.Address) : null;
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 100_000, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
        {
            Timeout = TimeSpan.FromMinutes(5),
        };
        if (settings.Auth)
        {
            // Every route gets it; only the gateway checks it (the upstream and the bare proxy ignore it).
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Settings.BenchToken);
        }

        var load = new LoadGenerator(client, upstream, gateway, bare, settings.Tokens);
        var events = settings.Tokens + 2;

        Console.WriteLine($"# gateway bench: {Environment.ProcessorCount} cores, .NET {Environment.Version}, tokens/stream {settings.Tokens}, load average at start: {LoadAverage()}");
        Console.WriteLine($"# command line: {string.Join(' ', args)}");
        Console.WriteLine($"# processes: load generator {Environment.ProcessId}, upstream {upstream.ProcessId}, gateway {gateway.ProcessId} (each its own runtime and thread pool)");
        Console.WriteLine($"# gateway (and .NET yardstick) environment: {(settings.GatewayEnvironment.Length == 0 ? "inherited" : string.Join(' ', settings.GatewayEnvironment.Select(p => $"{p.Key}={p.Value}")))}; inline socket scheduling: {(settings.InlineScheduling ? "on" : "off")}; bearer token required: {(settings.Auth ? "yes (--auth)" : "no")}; upstream client: {settings.UpstreamClient}");
        Console.WriteLine($"# CPUs allowed: load generator {AllowedCpus(Environment.ProcessId)}, upstream {AllowedCpus(upstream.ProcessId)}, gateway {AllowedCpus(gateway.ProcessId)}");
        // Warm both paths up unpaced first (thousands of requests), so that tiered compilation has finished in all
        // three processes before anything is measured: at one paced stream a second of warm-up is ~1 request, and
        // the JIT then competes with the measured run for the 2 cores.
        var heapAtStart = await gateway.HeapAsync();
        var gatewayWarmUp = await load.RunAsync(Route.Gateway, 16, TimeSpan.FromSeconds(3), 3000, 0);
        var warmUp = gatewayWarmUp;
        warmUp += await load.RunAsync(Route.Direct, 16, TimeSpan.FromSeconds(3), 3000, 0);
        if (bare is not null)
        {
            warmUp += await load.RunAsync(Route.Bare, 16, TimeSpan.FromSeconds(3), 3000, 0);
        }

        Console.WriteLine($"# warm-up: {warmUp.Requests} unpaced requests over every path, {warmUp.Errors} errors");
        var heap = await gateway.HeapAsync();
        Console.WriteLine(Invariant($"# gateway live heap: {heapAtStart / 1e6:0.0} MB at start, {heap / 1e6:0.0} MB after the warm-up stored {gatewayWarmUp.Requests} signatures in memory: {(double)(heap - heapAtStart) / Math.Max(1, gatewayWarmUp.Requests):0} bytes per stored signature"));
        if (!settings.SkipPaced)
        {
            var rounds = settings.RoundsOr(4);
            Console.WriteLine($"\n## paced: one token every {settings.IntervalMs} ms ({(PreciseTimer.IsAvailable ? "the first at arrival + interval to the microsecond, by clock_nanosleep; later ones on the runtime's millisecond timer" : "on the runtime's millisecond timer")}); streams {(settings.Stagger ? "staggered over one stream's length" : "all started together (so all end together)")}; per level at least {settings.Seconds} s and {settings.MinRequests} requests per path, direct and gateway alternating in {rounds} rounds each");
            var where = new List<string>();
            var yardstick = new List<string>();
            var legs = new List<string>();
            var spread = new List<string>();
            Console.WriteLine("| streams | n direct/gateway (requests = TTFB samples) | direct tok/s | gateway tok/s | ratio (all streams busy) | ratio (wall clock, incl. tail) | direct TTFB p50/p99 ms | gateway TTFB p50/p99 ms | added p50/p99 ms | direct transit p50/p99 ms | gateway transit p50/p99 ms | added transit p50/p99 ms | errors |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var level in settings.Levels)
            {
                await load.RunAsync(Route.Direct, level, TimeSpan.FromSeconds(1), 0, settings.IntervalMs); // warm-up
                await load.RunAsync(Route.Gateway, level, TimeSpan.FromSeconds(1), 0, settings.IntervalMs);
                if (bare is not null)
                {
                    await load.RunAsync(Route.Bare, level, TimeSpan.FromSeconds(1), 0, settings.IntervalMs);
                }

                await gateway.PhasesAsync(); // drop the warm-up's phase samples

                // Alternate direct and gateway so that a change in the machine's load hits both paths alike.
                var roundTime = TimeSpan.FromSeconds((double)settings.Seconds / rounds);
                var stagger = settings.Stagger ? TimeSpan.FromMilliseconds(settings.Tokens * settings.IntervalMs) : TimeSpan.Zero;
                var roundRequests = (settings.MinRequests + rounds - 1) / rounds;
                var direct = RunResult.Empty;
                var through = RunResult.Empty;
                var plain = RunResult.Empty;
                for (var round = 0; round < rounds; round++)
                {
                    direct += await load.RunAsync(Route.Direct, level, roundTime, roundRequests, settings.IntervalMs, stagger);
                    through += await load.RunAsync(Route.Gateway, level, roundTime, roundRequests, settings.IntervalMs, stagger);
                    if (bare is not null)
                    {
                        plain += await load.RunAsync(Route.Bare, level, roundTime, roundRequests, settings.IntervalMs, stagger);
                    }
                }

                spread.Add($"| {level} | {AddedAcross(direct, through)} | {(bare is null ? "—" : AddedAcross(direct, plain))} |");
                legs.Add($"| {level} | {direct.Legs} | {(bare is null ? "—" : plain.Legs)} | {through.Legs} | {(bare is null ? "—" : plain.OutSplit)} | {through.OutSplit} | {through.OnwardSplit} | {direct.PacingAndEnd} | {(bare is null ? "— | —" : plain.PacingAndEnd)} | {through.PacingAndEnd} | {direct.Delivery} | {(bare is null ? "—" : plain.Delivery)} | {through.Delivery} |");
                if (bare is not null)
                {
                    yardstick.Add(Invariant(
                        $"| {level} | {plain.Requests} | {plain.SteadyTokensPerSecond / direct.SteadyTokensPerSecond * 100:0.00} % | {plain.TtfbP50 - direct.TtfbP50:0.000}/{plain.TtfbP99 - direct.TtfbP99:0.000} | {plain.TransitP50:0.000}/{plain.TransitP99:0.000} | {plain.TransitP50 - direct.TransitP50:0.000}/{plain.TransitP99 - direct.TransitP99:0.000} | {through.TransitP50 - plain.TransitP50:0.000}/{through.TransitP99 - plain.TransitP99:0.000} | {plain.CpuPerRequest(Proc.Gateway):0} | {plain.Errors} |"));
                }

                var phases = await gateway.PhasesAsync();
                Console.WriteLine(Invariant(
                    $"| {level} | {direct.Requests}/{through.Requests} | {direct.SteadyTokensPerSecond:0} | {through.SteadyTokensPerSecond:0} | {through.SteadyTokensPerSecond / direct.SteadyTokensPerSecond * 100:0.00} % | {through.TokensPerSecond / direct.TokensPerSecond * 100:0.00} % | {direct.TtfbP50:0.000}/{direct.TtfbP99:0.000} | {through.TtfbP50:0.000}/{through.TtfbP99:0.000} | {through.TtfbP50 - direct.TtfbP50:0.000}/{through.TtfbP99 - direct.TtfbP99:0.000} | {direct.TransitP50:0.000}/{direct.TransitP99:0.000} | {through.TransitP50:0.000}/{through.TransitP99:0.000} | {through.TransitP50 - direct.TransitP50:0.000}/{through.TransitP99 - direct.TransitP99:0.000} | {direct.Errors}+{through.Errors} |"));
                where.Add(Invariant(
                    $"| {level} | {direct.Cores(Proc.Loadgen):0.00}/{direct.Cores(Proc.Upstream):0.00}/{direct.Cores(Proc.Gateway):0.00} | {through.Cores(Proc.Loadgen):0.00}/{through.Cores(Proc.Upstream):0.00}/{through.Cores(Proc.Gateway):0.00} | {through.CpuPerRequest(Proc.Gateway):0} | {through.CpuPerRequest(Proc.Gateway) * through.RequestsPerSecond / 1e6:0.000} | {through.GatewayGc}{(bare is null ? "" : $" ({plain.GatewayGc})")} | {phases} |"));
            }

            if (yardstick.Count > 0)
            {
                Console.WriteLine(settings.Yardstick == "nginx"
                    ? "\nYardstick (same rounds): nginx as a pass-through proxy (one process, upstream keep-alive, proxy_buffering off; no auth, hashing, signing or metrics)."
                    : "\nYardstick (same rounds): a bare .NET pass-through proxy (Kestrel + SocketsHttpHandler, copy and flush; no auth, hashing, signing or metrics) in its own process.");
                Console.WriteLine("| streams | n | bare tok/s vs direct | bare added TTFB p50/p99 ms | bare transit p50/p99 ms | bare added transit p50/p99 ms | gateway transit − bare p50/p99 ms | bare CPU µs/request | errors |");
                Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
                foreach (var row in yardstick)
                {
                    Console.WriteLine(row);
                }
            }

            // Two points (p50, p99) hide where a hop's cost sits: a shift of every request, or a tail that only some meet.
            Console.WriteLine($"\nAdded TTFB across the distribution (same runs), ms: proxy − direct at the same quantile, {string.Join('/', SpreadQuantiles.Select(q => $"p{q * 100:0}"))}");
            Console.WriteLine("| streams | gateway | yardstick |");
            Console.WriteLine("|---|---|---|");
            foreach (var row in spread)
            {
                Console.WriteLine(row);
            }

            Console.WriteLine("\nTransit legs (same runs), ms p50/p99: out (load generator sends → upstream handler entered) + back (upstream's first write → first byte at the load generator)");
            Console.WriteLine("| streams | direct | bare proxy | gateway | bare out leg: to the proxy + onward | gateway out leg: to the proxy + onward | gateway onward: → request handed to the socket + → upstream handler (p50/p99/max) | direct: upstream first → last token | direct: last token delivery | bare: upstream pacing | bare: last token delivery | gateway: upstream pacing | gateway: last token delivery | every token's delivery: direct | bare | gateway |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var row in legs)
            {
                Console.WriteLine(row);
            }

            Console.WriteLine("\nWhere the time goes (same runs). CPU in cores = CPU seconds per wall second of each process (loadgen/upstream/gateway);");
            Console.WriteLine("gateway phases (ms, p50/p99, n = gateway requests): request_read = relay entered → body read (hashed later, while the upstream works); upstream_headers = → upstream response headers;");
            Console.WriteLine("upstream_first_byte = → first upstream body bytes (includes the pacing); client_first_byte = → those bytes flushed to the client (the gateway's own hop).");
            Console.WriteLine("| streams | CPU cores, direct run | CPU cores, gateway run | gateway CPU µs/request | gateway cores needed (µs/request × requests/s) | gateway GCs / pause ms (bare) | n | request_read | upstream_headers | upstream_first_byte | client_first_byte | sign + store (after the last byte) |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
            foreach (var row in where)
            {
                Console.WriteLine(row);
            }
        }

        if (!settings.SkipUnpaced)
        {
            var concurrency = settings.UnpacedConcurrency;
            Console.WriteLine($"\n## unpaced: upstream as fast as it can, {concurrency} concurrent streams, {settings.UnpacedSeconds} s per run, {events} SSE events per stream");
            Console.WriteLine("| path | n (requests) | requests/s | SSE events/s | CPU µs/request loadgen/upstream/gateway | gateway CPU µs/request | gateway CPU µs/SSE event | gateway allocated bytes/request | errors |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
            await load.RunAsync(Route.Direct, concurrency, TimeSpan.FromSeconds(1), 0, 0);
            await load.RunAsync(Route.Gateway, concurrency, TimeSpan.FromSeconds(1), 0, 0);
            var direct = await load.RunAsync(Route.Direct, concurrency, TimeSpan.FromSeconds(settings.UnpacedSeconds), 0, 0);
            var through = await load.RunAsync(Route.Gateway, concurrency, TimeSpan.FromSeconds(settings.UnpacedSeconds), 0, 0);
            foreach (var (name, r) in new[] { ("direct", direct), ("through gateway", through) })
            {
                Console.WriteLine(Invariant(
                    $"| {name} | {r.Requests} | {r.RequestsPerSecond:0} | {r.RequestsPerSecond * events:0} | {r.CpuPerRequest(Proc.Loadgen):0.0}/{r.CpuPerRequest(Proc.Upstream):0.0}/{r.CpuPerRequest(Proc.Gateway):0.0} | {r.CpuPerRequest(Proc.Gateway):0.0} | {r.CpuPerRequest(Proc.Gateway) / events:0.00} | {r.GatewayAllocatedPerRequest:0} | {r.Errors} |"));
            }
        }

        Console.WriteLine($"\n# load average at end: {LoadAverage()}");
        var metrics = await client.GetStringAsync(new Uri(gateway.Address, "/v1/metrics"));
        Console.WriteLine("\n## gateway's own counters after the runs\n```");
        foreach (var line in metrics.Split('\n').Where(l => l.StartsWith("privateml_gateway_", StringComparison.Ordinal) && !l.Contains("_bucket{", StringComparison.Ordinal)))
        {
            Console.WriteLine(line);
        }

        Console.WriteLine("```");
    }

    private static readonly double[] SpreadQuantiles = [0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99];

    private static string AddedAcross(RunResult direct, RunResult proxied) =>
        string.Join('/', SpreadQuantiles.Select(q => (RunResult.Percentile(proxied.Ttfbs, q) - RunResult.Percentile(direct.Ttfbs, q)).ToString("0.000", CultureInfo.InvariantCulture)));

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private static string AllowedCpus(int processId)
    {
        var status = $"/proc/{processId}/status";
        var line = File.Exists(status) ? File.ReadLines(status).FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)) : null;
        return line?["Cpus_allowed_list:".Length..].Trim() ?? "unknown";
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";
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
        var allocated = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            action();
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: {clock.Elapsed.TotalMicroseconds / n:0.0} µs wall, {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds / n:0.0} µs CPU, {(GC.GetAllocatedBytesForCurrentThread() - allocated) / n} bytes allocated"));
    }
}
