using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Runtime;
using PrivateMl.Gateway;
using PrivateMl.Inference.Embedded;
using PrivateMl.Inference.Models;
using PrivateMl.Tee.Simulator;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml guest boot</c>: what the development image's init runs inside the VM. It takes the shared folder the
/// way dstack-util does (app-compose.json, .sys-config.json, .instance_info, .encrypted-env), starts the guest agent
/// on the SIMULATED TDX — which measures the app's identity into RTMR3 as a dstack CVM does (system-preparing, app-id,
/// compose-hash, instance-id, boot-mr-done, key-provider, system-ready) — and the inference node (embedded demo
/// model, attesting gateway) on <c>0.0.0.0:PORT</c>. The gateway also serves the simulator's PCCS routes under
/// <c>/pccs</c>, so a host can fetch the collateral for the guest's quotes. Everything goes to the console.
/// </summary>
internal static class GuestCommands
{
    /// <summary>Where the simulated PCCS routes are served on the gateway.</summary>
    public const string PccsPrefix = VerifyCommand.SimulatedPccsPath;

    public static Command Create()
    {
        var shared = new Option<string>("--shared") { Description = "Mounted shared folder from the host", DefaultValueFactory = _ => DevGuestInit.SharedFolderMount };
        var port = new Option<int>("--port") { Description = "Gateway port on 0.0.0.0", DefaultValueFactory = _ => DevGuestInit.GuestPort };
        var work = new Option<string>("--work-dir") { Description = "The guest's work directory (dstack: /dstack)", DefaultValueFactory = _ => "/dstack" };
        var state = new Option<string>("--state") { Description = "State directory (simulator, agent keys, demo model)", DefaultValueFactory = _ => "/var/lib/privateml" };
        var socket = new Option<string>("--socket") { Description = "Agent socket (DstackGuest API)", DefaultValueFactory = _ => AgentOptions.DefaultSocketPath };
        var boot = new Command("boot", "Inside the development VM: read the shared folder, measure the app into RTMR3 (SIMULATED TDX), start the agent and the inference node")
        {
            shared, port, work, state, socket,
        };
        boot.SetAction((parse, cancellationToken) => BootAsync(
            parse.GetValue(shared)!, parse.GetValue(port), parse.GetValue(work)!, parse.GetValue(state)!, parse.GetValue(socket)!,
            parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken));
        return new Command("guest", "Commands that run inside the development VM (privateml vmm image build-dev)") { boot };
    }

    internal static async Task<int> BootAsync(string sharedDirectory, int port, string workDirectory, string stateDirectory, string socketPath, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        void Say(string text) => output.WriteLine($"{DevGuestInit.LogPrefix} {text} (+{clock.Elapsed.TotalSeconds:F1} s)");
        if (port is < 1 or > 65535)
        {
            error.WriteLine("error: --port must be 1..65535");
            return ExitCodes.UsageOrInput;
        }

        GuestSharedFiles files;
        try
        {
            files = GuestSharedFolder.CopyAndRead(sharedDirectory, Path.Combine(workDirectory, ".host-shared"));
        }
        catch (Exception e) when (e is GuestBootException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"{DevGuestInit.LogPrefix} boot failed: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        Say($"app '{files.AppName}' compose_hash {Convert.ToHexStringLower(files.ComposeHash)} app_id {Convert.ToHexStringLower(files.AppId)}");
        var agentState = Path.Combine(stateDirectory, "agent");
        Directory.CreateDirectory(agentState);
        if (files.InstanceIdSeed is { } seed)
        {
            await File.WriteAllBytesAsync(Path.Combine(agentState, "instance-id-seed"), seed, cancellationToken);
        }

        ReportEnv(files, Say);

        void Quiet(ILoggingBuilder logging) => logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
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
            error.WriteLine($"{DevGuestInit.LogPrefix} boot failed: cannot load the demo model: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        Say($"embedded engine loaded ({engine.ModelId})");
        await using (engine)
        {
            var agentOptions = new AgentOptions
            {
                SocketPath = socketPath,
                TappdSocketPath = null,
                StateDirectory = agentState,
                AppComposePath = Path.Combine(files.Directory, GuestSharedFolder.AppComposeFile),
                VmConfig = files.VmConfig ?? new AgentOptions().VmConfig,
            };
            Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
            SimulatedTdxDevice? device = null;
            try
            {
                var agent = GuestAgentHost.BuildSimulated(agentOptions, out device, configureLogging: Quiet);
                await using (agent)
                {
                    await agent.StartAsync(cancellationToken);
                    var runtime = agent.Services.GetRequiredService<AgentRuntime>();
                    await runtime.EnsureBootedAsync();
                    foreach (var e in runtime.EventLog.RuntimeEvents)
                    {
                        Say($"RTMR3 event {e.Event}: {Describe(e.Event, e.EventPayload.Span)}");
                    }

                    using var agentClient = new DstackAgentClient(socketPath);
                    var gatewayOptions = new GatewayOptions
                    {
                        ListenUrls = [$"http://0.0.0.0:{port}"],
                        ModelName = engine.ModelId,
                        KeySource = SigningKeySource.Agent,
                    };
                    await using var gateway = GatewayHost.Build(gatewayOptions, engine, agentClient, configureLogging: Quiet);
                    gateway.MapSimulatedPccs(device.Platform, TimeProvider.System, prefix: PccsPrefix);
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
                    await agent.StopAsync(CancellationToken.None);
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or ArgumentException or HttpRequestException
                or DstackAgentException or CryptographicException or JsonException or PrivateMl.Attestation.Verification.AttestationException)
            {
                error.WriteLine($"{DevGuestInit.LogPrefix} boot failed: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
            finally
            {
                device?.Dispose();
            }
        }

        return ExitCodes.Accepted;
    }

    /// <summary>
    /// The encrypted env: dstack decrypts it only with the KMS's env key (kms mode); this build has no env decryption
    /// in the guest yet, so the file is reported and left alone.
    /// </summary>
    private static void ReportEnv(GuestSharedFiles files, Action<string> say)
    {
        if (files.EncryptedEnv is not { } blob)
        {
            say("no encrypted env");
            return;
        }

        say($"encrypted env present ({blob.Length} bytes, sha256 {Convert.ToHexStringLower(SHA256.HashData(blob))[..16]}); not decrypted: this build has no env decryption in the guest");
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
