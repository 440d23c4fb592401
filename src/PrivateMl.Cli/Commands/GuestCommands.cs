using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Client;
using PrivateMl.Gateway;
using PrivateMl.Inference.Embedded;
using PrivateMl.Inference.Models;
using PrivateMl.Tee.Simulator;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml guest boot</c>: what the development image's init runs inside the VM. It takes the shared folder the
/// way dstack-util does (app-compose.json, .sys-config.json, .instance_info, .encrypted-env), starts the guest agent
/// on the SIMULATED TDX (the image's platform, whose root the host's <c>kms serve --simulate</c> trusts) — which
/// measures the app's identity into RTMR3 as a dstack CVM does (system-preparing, app-id, compose-hash, instance-id,
/// boot-mr-done, key-provider, system-ready) and, for a KMS app, takes its keys from the KMS in <c>kms_urls</c> over
/// RA-TLS and opens the encrypted env — and then the inference node (embedded demo model, attesting gateway, bearer
/// tokens from the env's <c>PRIVATEML_API_KEY</c>) on <c>0.0.0.0:PORT</c>. A KMS or env failure stops the boot. The gateway also serves the simulator's PCCS routes under
/// <c>/pccs</c>, so a host can fetch the collateral for the guest's quotes. Everything goes to the console.
/// </summary>
internal static class GuestCommands
{
    /// <summary>Where the simulated PCCS routes are served on the gateway.</summary>
    public const string PccsPrefix = VerifyCommand.SimulatedPccsPath;

    /// <summary>The simulated PCCS routes (SimulatedPccsEndpoints), served without a token.</summary>
    private static readonly string[] PccsRoutes =
    [
        "/sgx/certification/v4/pckcrl", "/sgx/certification/v4/rootcacrl", "/SimulatedSGXRootCA.der", "/tdx/certification/v4/tcb",
        "/sgx/certification/v4/tcb", "/tdx/certification/v4/qe/identity", "/sgx/certification/v4/qe/identity",
    ];

    public static Command Create()
    {
        var shared = new Option<string>("--shared") { Description = "Mounted shared folder from the host", DefaultValueFactory = _ => DevGuestInit.SharedFolderMount };
        var port = new Option<int>("--port") { Description = "Gateway port on 0.0.0.0", DefaultValueFactory = _ => DevGuestInit.GuestPort };
        var work = new Option<string>("--work-dir") { Description = "The guest's work directory (dstack: /dstack)", DefaultValueFactory = _ => "/dstack" };
        var state = new Option<string>("--state") { Description = "State directory (simulator, agent keys, demo model)", DefaultValueFactory = _ => "/var/lib/privateml" };
        var socket = new Option<string>("--socket") { Description = "Agent socket (DstackGuest API)", DefaultValueFactory = _ => AgentOptions.DefaultSocketPath };
        var simulator = new Option<string>("--simulator") { Description = "SIMULATED TDX platform the image carries (the host KMS trusts its root)", DefaultValueFactory = _ => "/" + DevGuestInit.SimulatorPath };
        var boot = new Command("boot", "Inside the development VM: read the shared folder, measure the app into RTMR3 (SIMULATED TDX), start the agent and the inference node")
        {
            shared, port, work, state, socket, simulator,
        };
        boot.SetAction((parse, cancellationToken) => BootAsync(
            parse.GetValue(shared)!, parse.GetValue(port), parse.GetValue(work)!, parse.GetValue(state)!, parse.GetValue(socket)!, parse.GetValue(simulator)!,
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return new Command("guest", "Commands that run inside the development VM (privateml vmm image build-dev)") { boot };
    }

    internal static async Task<int> BootAsync(string sharedDirectory, int port, string workDirectory, string stateDirectory, string socketPath, string simulatorDirectory, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        void Say(string text) => output.WriteLine($"{DevGuestInit.LogPrefix} {text} (+{clock.Elapsed.TotalSeconds:F1} s)");
        int Fail(string reason)
        {
            error.WriteLine($"{DevGuestInit.LogPrefix} boot failed: {reason}");
            output.Flush();
            error.Flush();
            return ExitCodes.UsageOrInput;
        }

        if (port is < 1 or > 65535)
        {
            error.WriteLine("error: --port must be 1..65535");
            return ExitCodes.UsageOrInput;
        }

        GuestSharedFiles files;
        DevGuestKeyPlan plan;
        AgentOptions agentOptions;
        var agentState = Path.Combine(stateDirectory, "agent");
        try
        {
            files = GuestSharedFolder.CopyAndRead(sharedDirectory, Path.Combine(workDirectory, ".host-shared"));
            Say($"app '{files.AppName}' compose_hash {Convert.ToHexStringLower(files.ComposeHash)} app_id {Convert.ToHexStringLower(files.AppId)}");
            ReportEnv(files, Say);
            plan = DevGuestKeyPlan.For(files);
            agentOptions = await DevGuestAgent.PrepareAsync(files, plan, socketPath, agentState, cancellationToken);
            Say(DevGuestAgent.InstallSimulator(simulatorDirectory, agentState) is { } root
                ? $"SIMULATED TDX platform from the image (root sha256 {root[..16]}; a host KMS trusts it with kms serve --simulate --simulator <image>/tdx-simulator)"
                : $"SIMULATED TDX platform made fresh (the image has none at {simulatorDirectory}; no host KMS trusts it)");
        }
        catch (Exception e) when (e is GuestBootException or IOException or UnauthorizedAccessException)
        {
            return Fail(e.Message);
        }

        Say(plan.KmsUrls.Count > 0 ? $"key provider kms: app keys over RA-TLS from {string.Join(", then ", plan.KmsUrls)}" : "key provider local (no KMS)");
        void Quiet(ILoggingBuilder logging) => logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);

        // Keys and env first, as dstack-util does before any app starts: a KMS that is unreachable or refuses, or an env
        // that does not open, stops the boot here.
        DevGuestAgent agent;
        try
        {
            agent = await DevGuestAgent.StartAsync(agentOptions, Quiet, cancellationToken);
        }
        catch (GuestBootException e)
        {
            return Fail(e.Message);
        }

        await using (agent)
        {
            foreach (var line in AgentCommand.KeySource(agent.Host.Services))
            {
                Say(line);
            }

            foreach (var e in agent.Runtime.EventLog.RuntimeEvents)
            {
                Say($"RTMR3 event {e.Event}: {Describe(e.Event, e.EventPayload.Span)}");
            }

            if (plan.EncryptedEnvPath is not null)
            {
                var names = agent.EnvNames;
                Say($"env decrypted with the KMS's env key: {names.Count} variable(s) kept by allowed_envs: {(names.Count == 0 ? "(none)" : string.Join(", ", names))} (values not shown)");
            }

            var tokens = agent.ApiTokens();
            Say(tokens.Count > 0
                ? $"gateway requires a bearer token: {tokens.Count} token(s) from {DevGuestAgent.ApiTokensVariable}"
                : $"gateway serves without a token (no {DevGuestAgent.ApiTokensVariable} in the env)");

            using var loggerFactory = LoggerFactory.Create(Quiet);
            var modelPath = Path.Combine(stateDirectory, "models", DemoModelWriter.ModelName + ".gguf");
            Directory.CreateDirectory(Path.GetDirectoryName(modelPath)!);
            await File.WriteAllBytesAsync(modelPath, DemoModelWriter.Create(), cancellationToken);

            EmbeddedEngine engine;
            try
            {
                engine = EmbeddedEngine.Load(new EmbeddedEngineOptions { ModelPath = modelPath, MaxConcurrency = 2, Logger = loggerFactory.CreateLogger("PrivateMl.Inference.Embedded") });
            }
            catch (Exception e) when (e is IOException or GgufFormatException or ArgumentException or LLama.Exceptions.RuntimeError)
            {
                return Fail($"cannot load the demo model: {e.Message}");
            }

            Say($"embedded engine loaded ({engine.ModelId})");
            await using (engine)
            {
                try
                {
                    using var agentClient = new DstackAgentClient(socketPath);
                    var gatewayOptions = new GatewayOptions
                    {
                        ListenUrls = [$"http://0.0.0.0:{port}"],
                        ModelName = engine.ModelId,
                        KeySource = SigningKeySource.Agent,
                        Tokens = tokens,
                    };

                    // Collateral is public (as Intel's PCS is): a verifier fetches it without the node's token.
                    gatewayOptions.PublicPaths = new HashSet<string>(gatewayOptions.PublicPaths.Concat(PccsRoutes.Select(r => PccsPrefix + r)), StringComparer.Ordinal);
                    await using var gateway = GatewayHost.Build(gatewayOptions, engine, agentClient, configureLogging: Quiet);
                    gateway.MapSimulatedPccs(agent.Device.Platform, TimeProvider.System, prefix: PccsPrefix);
                    await gateway.StartAsync(cancellationToken);
                    Say($"ready: gateway on 0.0.0.0:{port} (SIMULATED TDX; collateral at {PccsPrefix}); Linux uptime {Uptime()} s");

                    try
                    {
                        await Task.Delay(Timeout.Infinite, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                    }

                    Say("stopping");
                    await gateway.StopAsync(CancellationToken.None);
                }
                catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or ArgumentException or HttpRequestException
                    or DstackAgentException or CryptographicException or JsonException or PrivateMl.Attestation.Verification.AttestationException)
                {
                    return Fail(e.Message);
                }
            }
        }

        return ExitCodes.Accepted;
    }

    /// <summary>The encrypted env the host wrote: its size and a hash prefix (an update-env is visible after a restart), never its content.</summary>
    private static void ReportEnv(GuestSharedFiles files, Action<string> say)
    {
        if (files.EncryptedEnv is not { } blob)
        {
            say("no encrypted env");
            return;
        }

        say($"encrypted env present ({blob.Length} bytes, sha256 {Convert.ToHexStringLower(SHA256.HashData(blob))[..16]})");
    }

    private static string Describe(string name, ReadOnlySpan<byte> payload) => name switch
    {
        "key-provider" => Encoding.UTF8.GetString(payload),
        _ when payload.IsEmpty => "(empty)",
        _ => Convert.ToHexStringLower(payload),
    };

    private static string Uptime()
    {
        try
        {
            return File.ReadAllText("/proc/uptime").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
