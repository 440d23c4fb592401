using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Hosting;
using PrivateMl.Gateway;
using PrivateMl.Inference.Embedded;
using PrivateMl.Inference.Models;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml up [--model PATH] [--port N] [--state DIR]</c>: a whole confidential-inference node on loopback in
/// one process — the guest agent on the SIMULATED TDX, the embedded llama.cpp engine and the attesting gateway in
/// front of it — until Ctrl-C. Without <c>--model</c> it serves the demo GGUF (random weights: meaningless text).
/// </summary>
internal static class UpCommand
{
    private const int MaxUnixSocketPath = 100;

    public static Command Create()
    {
        var model = new Option<FileInfo?>("--model") { Description = "GGUF model to serve (default: the demo model, written to the state directory; it produces meaningless text)" };
        var port = new Option<int>("--port") { Description = "Gateway port on 127.0.0.1 (0 picks a free one)", DefaultValueFactory = _ => 8000 };
        var state = new Option<string>("--state") { Description = "State directory (simulator, agent keys, demo model, collateral)", DefaultValueFactory = _ => ".privateml" };
        var threads = new Option<int?>("--threads") { Description = "CPU threads per generation (default: llama.cpp's choice)" };
        var concurrency = new Option<int>("--concurrency") { Description = "Generations at once; more wait in a queue, then get 429", DefaultValueFactory = _ => 2 };
        var command = new Command("up", "Run a local confidential-inference node: SIMULATED TDX agent + embedded engine + attesting gateway, on loopback")
        {
            model, port, state, threads, concurrency,
        };
        command.SetAction((parseResult, cancellationToken) => RunAsync(
            parseResult,
            parseResult.GetValue(model),
            parseResult.GetValue(port),
            parseResult.GetValue(state)!,
            parseResult.GetValue(threads),
            parseResult.GetValue(concurrency),
            cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parseResult, FileInfo? modelFile, int port, string stateOption, int? threads, int concurrency, CancellationToken cancellationToken)
    {
        var output = parseResult.InvocationConfiguration.Output;
        var error = parseResult.InvocationConfiguration.Error;
        if (port is < 0 or > 65535 || concurrency < 1 || threads is < 1)
        {
            error.WriteLine("error: --port must be 0..65535, --concurrency and --threads at least 1");
            return ExitCodes.UsageOrInput;
        }

        var stateDirectory = Path.GetFullPath(stateOption);
        var socketPath = Path.Combine(stateDirectory, "agent", "dstack.sock");
        if (socketPath.Length > MaxUnixSocketPath)
        {
            error.WriteLine($"error: the agent socket path {socketPath} is too long for a Unix socket; choose a shorter --state");
            return ExitCodes.UsageOrInput;
        }

        string modelPath;
        try
        {
            Directory.CreateDirectory(Path.Combine(stateDirectory, "agent"));
            modelPath = modelFile?.FullName ?? EnsureDemoModel(stateDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        void Quiet(ILoggingBuilder logging) => logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        using var loggerFactory = LoggerFactory.Create(Quiet);

        EmbeddedEngine engine;
        try
        {
            engine = EmbeddedEngine.Load(new EmbeddedEngineOptions
            {
                ModelPath = modelPath,
                Threads = threads,
                MaxConcurrency = concurrency,
                Logger = loggerFactory.CreateLogger("PrivateMl.Inference.Embedded"),
            });
        }
        catch (Exception e) when (e is IOException or GgufFormatException or ArgumentException or LLama.Exceptions.RuntimeError)
        {
            error.WriteLine($"error: cannot load model {modelPath}: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        await using (engine)
        {
            var agentOptions = new AgentOptions
            {
                SocketPath = socketPath,
                TappdSocketPath = null,
                StateDirectory = Path.Combine(stateDirectory, "agent"),
            };
            SimulatedTdxDevice? device = null;
            WebApplication agent;
            try
            {
                agent = GuestAgentHost.BuildSimulated(agentOptions, out device, configureLogging: Quiet);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or ArgumentException
                or PrivateMl.Attestation.Verification.AttestationException or CryptographicException)
            {
                device?.Dispose();
                error.WriteLine($"error: the simulated agent could not be set up: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            using var agentClient = new DstackAgentClient(socketPath);
            try
            {
                await using (agent)
                {
                    await agent.StartAsync(cancellationToken);
                    var gatewayOptions = new GatewayOptions
                    {
                        ListenUrls = [$"http://127.0.0.1:{port}"],
                        ModelName = engine.ModelId,
                        KeySource = SigningKeySource.Agent,
                    };
                    await using var gateway = GatewayHost.Build(gatewayOptions, engine, agentClient, configureLogging: Quiet);
                    gateway.MapSimulatedPccs(device!.Platform, TimeProvider.System, prefix: VerifyCommand.SimulatedPccsPath);
                    await gateway.StartAsync(cancellationToken);
                    var url = GatewayHost.Addresses(gateway)[0].ToString().TrimEnd('/');
                    var collateralDirectory = WriteCollateral(stateDirectory, device!);
                    var (ecdsa, ed25519) = await SigningAddressesAsync(url, cancellationToken);

                    output.WriteLine($"privateml node up (SIMULATED TDX: evidence is signed by the simulator's root and proves nothing about hardware)");
                    output.WriteLine($"  url            {url}/v1   (OpenAI-compatible; model \"{engine.ModelId}\", context {engine.ContextSize})");
                    output.WriteLine($"  model          {modelPath}");
                    if (modelFile is null)
                    {
                        output.WriteLine("                 demo model: random weights, never trained; it produces meaningless text (use --model PATH.gguf)");
                    }

                    output.WriteLine($"  signing (ecdsa)   {ecdsa}");
                    output.WriteLine($"  signing (ed25519) {ed25519}");
                    output.WriteLine($"  agent socket   {socketPath}");
                    output.WriteLine($"  collateral     {collateralDirectory}");
                    output.WriteLine();
                    output.WriteLine($"verify this node (collateral from its simulated PCCS at {url}{VerifyCommand.SimulatedPccsPath}):");
                    output.WriteLine($"  privateml verify {url} --allow-simulated");
                    output.WriteLine("or offline, with the collateral saved at start:");
                    output.WriteLine($"  privateml verify {url} --allow-simulated --collateral {collateralDirectory}");
                    output.WriteLine("or check the TDX quote alone (fresh nonce, simulated root trusted explicitly):");
                    output.WriteLine($"  curl -s \"{url}/v1/attestation/report?nonce=$(openssl rand -hex 32)\" | jq -r .intel_quote > quote.hex");
                    output.WriteLine($"  privateml quote verify quote.hex --collateral {Path.Combine(collateralDirectory, "collateral.json")} --allow-simulated --trust-root {Path.Combine(collateralDirectory, "simulated-root.pem")}");
                    output.WriteLine("try it:");
                    output.WriteLine($"  curl -s {url}/v1/chat/completions -H 'content-type: application/json' -d '{{\"model\":\"{engine.ModelId}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}],\"max_tokens\":32}}'");
                    output.WriteLine("Ctrl-C stops the node.");

                    await UntilStopped.WaitAsync(cancellationToken);

                    output.WriteLine("stopping…");
                    await gateway.StopAsync(CancellationToken.None);
                    await agent.StopAsync(CancellationToken.None);
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or HttpRequestException
                or DstackAgentException or CryptographicException or JsonException)
            {
                error.WriteLine($"error: the node could not start: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
            finally
            {
                device?.Dispose();
            }
        }

        return ExitCodes.Accepted;
    }

    private static string EnsureDemoModel(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, "models", DemoModelWriter.ModelName + ".gguf");
        var bytes = DemoModelWriter.Create();
        if (!File.Exists(path) || !File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }

        return path;
    }

    /// <summary>The simulator's collateral (dcap-qvl JSON) and root CA, for offline verification of this node's quotes.</summary>
    private static string WriteCollateral(string stateDirectory, SimulatedTdxDevice device)
    {
        var directory = Path.Combine(stateDirectory, "collateral");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "collateral.json"), JsonSerializer.Serialize(device.CreateCollateral(), SimulatorCliJson.Default.DcapCollateral));
        File.WriteAllText(Path.Combine(directory, "simulated-root.pem"), SimulatedPki.ToPem(device.Platform.Pki.RootCertificate));
        return directory;
    }

    private static async Task<(string Ecdsa, string Ed25519)> SigningAddressesAsync(string url, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
        async Task<string> AddressOf(string algo)
        {
            var nonce = RandomNumberGenerator.GetHexString(64, lowercase: true);
            using var response = await http.GetAsync($"/v1/attestation/report?signing_algo={algo}&nonce={nonce}", cancellationToken);
            response.EnsureSuccessStatusCode();
            using var json = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken));
            return json.RootElement.GetProperty("signing_address").GetString() ?? "?";
        }

        return (await AddressOf("ecdsa"), await AddressOf("ed25519"));
    }
}
