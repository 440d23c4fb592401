using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Client;
using PrivateMl.Gateway;
using PrivateMl.Inference.Upstream;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml serve --upstream URL [--agent-socket PATH | --no-agent] [--listen URL]... [--redis CONN] [--tokens FILE]
/// [--keys random|agent] [--model NAME] [--max-body BYTES] [--max-streams N] [--signature-ttl SECONDS]
/// [--max-signatures N] [--upstream-timeout SECONDS] [--upstream-client auto|sockets|httpclient] [--public PATH]... [--peer URL]... [--gpu none|nvml|simulated] [--simulated-gpus N]
/// [--drain-delay SECONDS] [--shutdown-timeout SECONDS]</c>: the attesting OpenAI-compatible gateway in front of an
/// upstream server (vLLM). Serves until stopped (Ctrl+C / SIGTERM), then stops gracefully: /ready answers 503 for the
/// drain delay while requests are still served, then completions in flight get the shutdown timeout to finish.
/// </summary>
internal static class ServeCommand
{
    /// <summary>Set when the gateway is serving (tests wait on it).</summary>
    internal static Action<WebApplication>? Started { get; set; }

    private const string DrainDelayName = "--drain-delay";
    private const string ShutdownTimeoutName = "--shutdown-timeout";
    private const int DefaultShutdownSeconds = 60;

    /// <summary>One JSON object per log line, UTC timestamps (for log collectors).</summary>
    private static void JsonLogs(ILoggingBuilder logging) => logging.AddJsonConsole(o =>
    {
        o.UseUtcTimestamp = true;
        o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
    });

    /// <summary>Text or JSON lines at <paramref name="level"/>, without ASP.NET Core's per-request lines (the gateway logs what matters).</summary>
    private static Action<ILoggingBuilder> Logging(string format, LogLevel level) => logging =>
    {
        (format == "json" ? JsonLogs : LogLevels.Console(level))(logging);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning).SetMinimumLevel(level);
    };

    /// <summary>
    /// How long the process may take to end after Ctrl-C or SIGTERM: for <c>serve</c>, its drain delay and shutdown
    /// timeout and a few seconds more (System.CommandLine otherwise ends the process two seconds after the signal,
    /// cutting the completions a graceful stop is for); null for every other command (the default).
    /// </summary>
    internal static TimeSpan? TerminationGrace(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        if (parse.CommandResult.Command.Name != "serve" || parse.Errors.Count > 0)
        {
            return null;
        }

        var seconds = Math.Max(0, parse.GetValue<int>(DrainDelayName)) + Math.Max(0, parse.GetValue<int>(ShutdownTimeoutName));
        return TimeSpan.FromSeconds(seconds + 5);
    }

    /// <summary>
    /// Whether this command line runs <c>serve</c> with inline I/O (the default), for <see cref="Program.Main"/>: the
    /// runtime reads <see cref="InlineCompletionsVariable"/> once, when the process first uses a socket, so only the
    /// process's entry point can still set it.
    /// </summary>
    internal static bool WantsInlineIo(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        return parse.CommandResult.Command.Name == "serve" && parse.Errors.Count == 0 && parse.GetValue<bool>(InlineIoName);
    }

    /// <summary>The runtime's switch for running socket completions on its socket threads (the upstream's included).</summary>
    internal const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    private const string InlineIoName = "--inline-io";

    public static Command Create()
    {
        var upstream = new Option<string>("--upstream") { Description = "Base URL of the OpenAI-compatible upstream, e.g. http://127.0.0.1:8000", Required = true };
        var agentSocket = new Option<string>("--agent-socket")
        {
            Description = "Unix socket of the guest agent (quotes, keys)",
            DefaultValueFactory = _ => DstackAgentClient.DefaultSocketPath,
        };
        var noAgent = new Option<bool>("--no-agent") { Description = "Run without a guest agent: no attestation reports (503), random keys only" };
        var listen = new Option<string[]>("--listen")
        {
            Description = "URL to listen on (repeatable)",
            DefaultValueFactory = _ => ["http://127.0.0.1:8080"],
            AllowMultipleArgumentsPerToken = false,
        };
        var redis = new Option<string?>("--redis") { Description = "StackExchange.Redis connection string; signatures shared by a fleet and kept across restarts" };
        var tokens = new Option<FileInfo?>("--tokens") { Description = "File with one bearer token per line (# comments); without it every endpoint is open" };
        var keys = new Option<string>("--keys") { Description = "Signing keys: random (made at start) or agent (derived through GetKey)", DefaultValueFactory = _ => "random" };
        keys.AcceptOnlyFromAmong("random", "agent");
        var model = new Option<string>("--model") { Description = "Model name used in signature store keys", DefaultValueFactory = _ => "privateml" };
        var maxBody = new Option<long>("--max-body") { Description = "Largest request body in bytes", DefaultValueFactory = _ => 4 * 1024 * 1024 };
        var maxStreams = new Option<int>("--max-streams") { Description = "Most completions relayed at once (more get 429)", DefaultValueFactory = _ => 1024 };
        var ttl = new Option<int>("--signature-ttl") { Description = "Seconds signatures and receipts stay retrievable", DefaultValueFactory = _ => 86400 };
        var maxSignatures = new Option<int>("--max-signatures") { Description = "Most signatures kept in memory (about 3 KB each: the default bound is about 3 GB when full; use --redis or lower it on small machines)", DefaultValueFactory = _ => 1_000_000 };
        var upstreamTimeout = new Option<int>("--upstream-timeout") { Description = "Seconds to wait for upstream headers, and between upstream body reads", DefaultValueFactory = _ => 300 };
        var peers = new Option<string[]>("--peer") { Description = "Another gateway whose report is merged into all_attestations (repeatable; its token from PRIVATEML_PEER_TOKEN)" };
        var gpu = new Option<string>("--gpu")
        {
            Description = "GPU evidence in reports: none, nvml (this machine's GPUs) or simulated (SIMULATED evidence)",
            DefaultValueFactory = _ => "none",
        };
        gpu.AcceptOnlyFromAmong("none", "nvml", "simulated");
        var simulatedGpus = new Option<int?>("--simulated-gpus")
        {
            Description = $"With --gpu simulated: how many simulated GPUs the node attests (1–{PrivateMl.Tee.Simulator.Gpu.SimulatedGpuEvidenceSource.MaxGpus}; default 1), to try multi-GPU reports and `verify --gpus N` without GPUs",
        };
        var upstreamClient = new Option<string>("--upstream-client")
        {
            Description = "What carries requests to the upstream: sockets (HTTP/1.1 on pooled sockets, http only: the lower first byte), httpclient (SocketsHttpHandler, http or https), or auto (sockets for http, httpclient for https)",
            DefaultValueFactory = _ => "auto",
        };
        upstreamClient.AcceptOnlyFromAmong("auto", "sockets", "httpclient");
        var inlineIo = new Option<bool>(InlineIoName)
        {
            Description = "Relay the first byte on the socket threads that received it (Kestrel's and, through DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1, which serve sets unless it is set already, the upstream's); later chunks and signing run on the thread pool. On by default: a lower first byte and tail at model-like rates, ~5 % fewer requests/s when saturated. --inline-io false: every request on the thread pool (docs/gateway-bench.md)",
            DefaultValueFactory = _ => true,
        };
        var drainDelay = new Option<int>(DrainDelayName)
        {
            Description = "On Ctrl-C/SIGTERM, seconds to keep serving with /ready answering 503 before the listeners close (let a load balancer take this instance out first)",
        };
        var shutdownTimeout = new Option<int>(ShutdownTimeoutName)
        {
            Description = "On Ctrl-C/SIGTERM, seconds completions in flight may take to finish after the listeners closed; those still running are then aborted, unsigned",
            DefaultValueFactory = _ => DefaultShutdownSeconds,
        };
        var logFormat = new Option<string>("--log-format")
        {
            Description = "Console log lines: text (one line each) or json (one JSON object each, UTC timestamps, for log collectors)",
            DefaultValueFactory = _ => "text",
        };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var logLevel = LogLevels.Option();
        var publicPaths = new Option<string[]>("--public") { Description = "Paths served without a token (repeatable; default /v1/models /v1/metrics /health /ready)" };

        var command = new Command("serve", "Run the attesting OpenAI-compatible gateway in front of an upstream inference server")
        {
            upstream, agentSocket, noAgent, listen, redis, tokens, keys, model, maxBody, maxStreams, ttl, maxSignatures, upstreamTimeout, upstreamClient, publicPaths, peers, gpu, simulatedGpus, inlineIo,
            drainDelay, shutdownTimeout, logFormat, logLevel,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var output = parseResult.InvocationConfiguration.Output;
            if (!Uri.TryCreate(parseResult.GetValue(upstream), UriKind.Absolute, out var upstreamUri) || upstreamUri.Scheme is not ("http" or "https"))
            {
                error.WriteLine($"error: --upstream must be an http(s) URL, got '{parseResult.GetValue(upstream)}'");
                return ExitCodes.UsageOrInput;
            }

            var tokenList = new List<string>();
            if (parseResult.GetValue(tokens) is { } tokenFile)
            {
                if (!tokenFile.Exists)
                {
                    error.WriteLine($"error: --tokens {tokenFile.FullName} does not exist");
                    return ExitCodes.UsageOrInput;
                }

                tokenList.AddRange(File.ReadAllLines(tokenFile.FullName).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
                if (tokenList.Count == 0)
                {
                    error.WriteLine($"error: --tokens {tokenFile.FullName} holds no token");
                    return ExitCodes.UsageOrInput;
                }
            }

            var timeout = TimeSpan.FromSeconds(Math.Max(1, parseResult.GetValue(upstreamTimeout)));
            var options = new GatewayOptions
            {
                ListenUrls = parseResult.GetValue(listen) ?? ["http://127.0.0.1:8080"],
                RedisConnection = parseResult.GetValue(redis),
                Tokens = tokenList,
                KeySource = parseResult.GetValue(keys) == "agent" ? SigningKeySource.Agent : SigningKeySource.Random,
                ModelName = parseResult.GetValue(model)!,
                MaxRequestBodyBytes = parseResult.GetValue(maxBody),
                MaxConcurrentStreams = parseResult.GetValue(maxStreams),
                SignatureTtl = TimeSpan.FromSeconds(parseResult.GetValue(ttl)),
                MaxStoredSignatures = parseResult.GetValue(maxSignatures),
                UpstreamIdleTimeout = timeout,
                InlineSocketScheduling = parseResult.GetValue(inlineIo),
                DrainDelay = TimeSpan.FromSeconds(parseResult.GetValue(drainDelay)),
                ShutdownTimeout = TimeSpan.FromSeconds(parseResult.GetValue(shutdownTimeout)),
            };
            if (parseResult.GetValue(publicPaths) is { Length: > 0 } paths)
            {
                options.PublicPaths = new HashSet<string>(paths, StringComparer.Ordinal);
            }

            foreach (var peer in parseResult.GetValue(peers) ?? [])
            {
                if (!Uri.TryCreate(peer, UriKind.Absolute, out var peerUri) || peerUri.Scheme is not ("http" or "https"))
                {
                    error.WriteLine($"error: --peer must be an http(s) URL, got '{peer}'");
                    return ExitCodes.UsageOrInput;
                }

                options.Peers = [.. options.Peers, peerUri];
            }

            options.PeerToken = Environment.GetEnvironmentVariable("PRIVATEML_PEER_TOKEN");
            var withoutAgent = parseResult.GetValue(noAgent);
            if (withoutAgent && options.KeySource == SigningKeySource.Agent)
            {
                error.WriteLine("error: --keys agent needs the guest agent (drop --no-agent)");
                return ExitCodes.UsageOrInput;
            }

            using var agent = withoutAgent ? null : new DstackAgentClient(parseResult.GetValue(agentSocket));
            var client = parseResult.GetValue(upstreamClient) switch
            {
                "sockets" => UpstreamClient.Sockets,
                "httpclient" => UpstreamClient.HttpClient,
                _ => UpstreamClient.Auto,
            };
            if (client == UpstreamClient.Sockets && upstreamUri.Scheme != "http")
            {
                error.WriteLine("error: --upstream-client sockets speaks plain http; an https upstream needs httpclient (or auto)");
                return ExitCodes.UsageOrInput;
            }

            using var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = upstreamUri, ResponseHeadersTimeout = timeout }, client);
            var gpuCount = parseResult.GetValue(simulatedGpus);
            if (gpuCount is not null && parseResult.GetValue(gpu) != "simulated")
            {
                error.WriteLine("error: --simulated-gpus needs --gpu simulated");
                return ExitCodes.UsageOrInput;
            }

            if (gpuCount is < 1 or > PrivateMl.Tee.Simulator.Gpu.SimulatedGpuEvidenceSource.MaxGpus)
            {
                error.WriteLine($"error: --simulated-gpus must be 1–{PrivateMl.Tee.Simulator.Gpu.SimulatedGpuEvidenceSource.MaxGpus}, got {gpuCount}");
                return ExitCodes.UsageOrInput;
            }

            using var simulatedGpu = parseResult.GetValue(gpu) == "simulated" ? new PrivateMl.Tee.Simulator.Gpu.SimulatedGpuEvidenceSource(gpuCount ?? 1) : null;
            PrivateMl.Tee.Gpu.IGpuEvidenceSource? gpuSource = parseResult.GetValue(gpu) switch
            {
                "nvml" => new PrivateMl.Tee.Gpu.NvmlGpuEvidenceSource(),
                "simulated" => simulatedGpu,
                _ => null,
            };
            if (simulatedGpu is not null)
            {
                error.WriteLine("WARNING: SIMULATED GPU — GPU evidence in reports is signed by the simulator and proves nothing about hardware.");
            }

            WebApplication app;
            try
            {
                app = GatewayHost.Build(
                    options,
                    backend,
                    agent,
                    services =>
                    {
                        if (gpuSource is not null)
                        {
                            services.AddSingleton(gpuSource);
                        }
                    },
                    Logging(parseResult.GetValue(logFormat)!, LogLevels.Parse(parseResult.GetValue(logLevel)!)));
            }
            catch (ArgumentException e)
            {
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            await using (app)
            {
                try
                {
                    await app.StartAsync(cancellationToken);
                }
                catch (Exception e) when (e is IOException or InvalidOperationException or DstackAgentException or UnauthorizedAccessException)
                {
                    error.WriteLine($"error: the gateway could not start: {e.Message}");
                    return ExitCodes.UsageOrInput;
                }

                output.WriteLine($"privateml gateway serving on {string.Join(", ", GatewayHost.Addresses(app))} → {upstreamUri}"
                    + (tokenList.Count == 0 ? " (no tokens: open to anyone who can reach it)" : ""));
                Started?.Invoke(app);
                await UntilStopped.WaitAsync(cancellationToken);

                await app.StopAsync(CancellationToken.None);
            }

            return ExitCodes.Accepted;
        });
        return command;
    }
}
