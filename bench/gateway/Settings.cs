using System.Globalization;

/// <summary>
/// The bench's options, parsed in one place for every mode (paced and unpaced side by side, <c>--e2ee</c>,
/// <c>--signing</c>, and the child roles the side-by-side run starts). Unknown options and bad values are refused.
/// </summary>
internal sealed record Settings(
    int Tokens,
    int IntervalMs,
    int[] Levels,
    int Seconds,
    int MinRequests,
    int? Rounds,
    int UnpacedConcurrency,
    int UnpacedSeconds,
    bool SkipPaced,
    bool SkipUnpaced,
    bool Signing,
    bool E2ee,
    int E2eeStreams,
    string? Role,
    Uri? Upstream,
    bool InlineScheduling,
    string? PinUpstream,
    string? PinGateway,
    KeyValuePair<string, string>[] GatewayEnvironment,
    bool BareProxy,
    string Yardstick,
    bool Stagger,
    bool Auth,
    string UpstreamClient)
{
    /// <summary>The bearer token the gateway requires under <c>--auth</c> (the load generator sends it on every route).</summary>
    public const string BenchToken = "bench-token-0123456789abcdef";

    public const string Usage = """
        usage: PrivateMl.Gateway.Bench [--tokens 64] [--interval-ms 10] [--levels 1,16,128] [--seconds 10]
               [--min-requests 200] [--rounds 4] [--unpaced-concurrency 32] [--unpaced-seconds 10]
               [--skip-paced] [--skip-unpaced] [--inline-scheduling on|off (default on, as serve)]
               [--bare-proxy] [--yardstick dotnet|nginx] [--stagger] [--auth] [--upstream-client sockets|httpclient (default sockets, as serve)] [--pin-upstream CPUS] [--pin-gateway CPUS] [--gateway-env "NAME=VALUE;NAME=VALUE"]   (CPU lists as taskset -c takes them, e.g. 4-7;
               pin the load generator itself by starting the bench under taskset -c)
           or: PrivateMl.Gateway.Bench --signing
           or: PrivateMl.Gateway.Bench --e2ee [--e2ee-streams 16] [--rounds 3] [--tokens ..] [--interval-ms ..]
               [--seconds ..] [--unpaced-seconds ..]
        """;

    private static readonly HashSet<string> Flags = ["--skip-paced", "--skip-unpaced", "--signing", "--e2ee", "--bare-proxy", "--stagger", "--auth"];

    private static readonly HashSet<string> Valued =
    [
        "--tokens", "--interval-ms", "--levels", "--seconds", "--min-requests", "--rounds", "--unpaced-concurrency",
        "--unpaced-seconds", "--e2ee-streams", "--role", "--upstream", "--inline-scheduling",
        "--pin-upstream", "--pin-gateway", "--gateway-env", "--yardstick", "--upstream-client",
    ];

    /// <summary>The rounds a mode runs: <c>--rounds</c> when given, else the mode's own default.</summary>
    public int RoundsOr(int fallback) => Rounds ?? fallback;

    /// <summary>The settings, or null with the reason in <paramref name="error"/>.</summary>
    public static Settings? Parse(string[] args, out string? error)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (Flags.Contains(args[i]))
            {
                flags.Add(args[i]);
            }
            else if (Valued.Contains(args[i]) && i + 1 < args.Length)
            {
                values[args[i]] = args[++i];
            }
            else
            {
                error = Valued.Contains(args[i]) ? $"{args[i]} needs a value" : $"unknown option {args[i]}";
                return null;
            }
        }

        string? problem = null;
        int Int(string name, int fallback, int min)
        {
            if (!values.TryGetValue(name, out var text))
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min)
            {
                problem ??= $"{name} must be a whole number ≥ {min}";
            }

            return value;
        }

        var levels = (values.GetValueOrDefault("--levels") ?? "1,16,128").Split(',').Select(s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 0).ToArray();
        if (levels.Contains(0))
        {
            problem = "--levels must be a comma-separated list of positive stream counts";
        }

        var role = values.GetValueOrDefault("--role");
        if (role is not (null or "upstream" or "gateway" or "bare"))
        {
            problem = "--role must be upstream, gateway or bare";
        }

        Uri? upstream = null;
        if (values.TryGetValue("--upstream", out var address) && !Uri.TryCreate(address, UriKind.Absolute, out upstream))
        {
            problem = "--upstream must be an absolute URL";
        }

        var inline = values.GetValueOrDefault("--inline-scheduling");
        if (inline is not (null or "on" or "off"))
        {
            problem = "--inline-scheduling must be on or off";
        }

        // Which pass-through proxy measures the price of one HTTP hop: the bare .NET one, or nginx (a C event loop,
        // the usual production reverse proxy) to tell this machine's floor from .NET's.
        var yardstick = values.GetValueOrDefault("--yardstick") ?? "dotnet";
        if (yardstick is not ("dotnet" or "nginx"))
        {
            problem = "--yardstick must be dotnet or nginx";
        }

        // The gateway's upstream client: serve's HTTP/1.1 sockets, or SocketsHttpHandler (serve's --upstream-client httpclient).
        var upstreamClient = values.GetValueOrDefault("--upstream-client") ?? "sockets";
        if (upstreamClient is not ("sockets" or "httpclient"))
        {
            problem = "--upstream-client must be sockets or httpclient";
        }

        string? Cpus(string name)
        {
            var list = values.GetValueOrDefault(name);
            if (list is not null && (list.Length is 0 or > 256 || !list.All(c => char.IsAsciiDigit(c) || c is ',' or '-')))
            {
                problem = $"{name} must be a CPU list such as 0-3 or 4,6";
            }

            return list;
        }

        // Runtime knobs for the gateway process only (e.g. DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0), so that an
        // A/B leaves the load generator and the upstream as they were.
        var environment = (values.GetValueOrDefault("--gateway-env") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries).Select(pair =>
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                problem = "--gateway-env takes NAME=VALUE pairs separated by ;";
                return default;
            }

            return KeyValuePair.Create(pair[..equals], pair[(equals + 1)..]);
        }).ToArray();

        // As `privateml serve`: inline I/O unless --inline-scheduling off, with the runtime's inline socket completions
        // (serve sets the variable in its own process; here the bench gives it to the gateway and the .NET yardstick).
        const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        inline ??= "on";
        if (inline == "on" && !environment.Any(p => p.Key == InlineCompletions))
        {
            environment = [.. environment, KeyValuePair.Create(InlineCompletions, "1")];
        }

        var settings = new Settings(
            Int("--tokens", 64, 1),
            Int("--interval-ms", 10, 0),
            levels,
            Int("--seconds", 10, 1),
            Int("--min-requests", 200, 0),
            values.ContainsKey("--rounds") ? Int("--rounds", 4, 1) : null,
            Int("--unpaced-concurrency", 32, 1),
            Int("--unpaced-seconds", 10, 1),
            flags.Contains("--skip-paced"),
            flags.Contains("--skip-unpaced"),
            flags.Contains("--signing"),
            flags.Contains("--e2ee"),
            Int("--e2ee-streams", 16, 1),
            role,
            upstream,
            inline == "on",
            Cpus("--pin-upstream"),
            Cpus("--pin-gateway"),
            environment,
            flags.Contains("--bare-proxy") || values.ContainsKey("--yardstick"),
            yardstick,
            flags.Contains("--stagger"),
            flags.Contains("--auth"),
            upstreamClient);
        error = problem;
        return problem is null ? settings : null;
    }
}
