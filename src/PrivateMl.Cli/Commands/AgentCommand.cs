using System.CommandLine;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Agent;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml agent [--simulate] [--state DIR] [--socket PATH] [--tappd-socket PATH] [--listen URL] [--app-compose FILE] [--kms URL]…</c>:
/// the dstack-compatible guest agent. On a TDX guest it uses the device the detector finds (configfs-tsm or
/// /dev/tdx_guest) and the CCEL boot log; with <c>--simulate</c> the software TDX (SIMULATED evidence). Serves until
/// stopped (Ctrl+C / SIGTERM).
/// </summary>
internal static class AgentCommand
{
    /// <summary>Where the detector looks (tests point it at an empty directory).</summary>
    internal static TdxDevicePaths DevicePaths { get; set; } = TdxDevicePaths.Default;

    /// <summary>
    /// With key provider kms: each KMS passed over and why (as dstack-util warns of each), then the one that gave the
    /// app keys; nothing otherwise.
    /// </summary>
    internal static IEnumerable<string> KeySource(IServiceProvider services)
    {
        if (services.GetService<IKeyProvider>() is KmsKeyProvider { CurrentUrl: { } url } kms)
        {
            foreach (var passed in kms.PassedOver)
            {
                yield return $"KMS {passed.Url} gave no app keys: {passed.Reason}";
            }

            yield return $"app keys from the KMS at {url}";
        }
    }

    public static Command Create()
    {
        var simulate = new Option<bool>("--simulate") { Description = "Use the software TDX (SIMULATED quotes; never trusted by default policies)" };
        var state = new Option<string?>("--state") { Description = "State directory (key-provider roots, instance seed, simulator); default /var/lib/privateml/agent, or .privateml-agent with --simulate" };
        var socket = new Option<string>("--socket")
        {
            Description = "Unix socket of the DstackGuest API (empty to disable)",
            DefaultValueFactory = _ => AgentOptions.DefaultSocketPath,
        };
        var tappdSocket = new Option<string>("--tappd-socket")
        {
            Description = "Unix socket of the legacy Tappd API (empty to disable)",
            DefaultValueFactory = _ => AgentOptions.DefaultTappdSocketPath,
        };
        var listen = new Option<string?>("--listen") { Description = "Also serve both APIs over TCP, e.g. http://127.0.0.1:8090" };
        var appCompose = new Option<FileInfo?>("--app-compose") { Description = "app-compose.json whose SHA-256 is measured as compose_hash (default: one in the state directory)" };
        var kms = KmsCommands.UrlsOption("--kms", "Get app keys from a KMS over RA-TLS (key provider kms), e.g. https://127.0.0.1:8000; "
            + "repeat it for fallbacks (dstack's kms_urls): each is tried in order until one gives the keys");
        var encryptedEnv = new Option<string?>("--encrypted-env") { Description = "dstack .encrypted-env to open at start with the app's env key (only names in allowed_envs are kept)" };
        var decryptedEnvDir = new Option<string?>("--decrypted-env-dir") { Description = "Where .decrypted-env and .decrypted-env.json are written (default: next to --encrypted-env)" };

        var logLevel = LogLevels.Option();
        var command = new Command("agent", "Run the dstack-compatible guest agent (DstackGuest on dstack.sock, Tappd on tappd.sock)")
        {
            simulate, state, socket, tappdSocket, listen, appCompose, kms, encryptedEnv, decryptedEnvDir, logLevel,
        };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var output = parseResult.InvocationConfiguration.Output;
            var simulated = parseResult.GetValue(simulate);
            var options = new AgentOptions
            {
                SocketPath = parseResult.GetValue(socket),
                TappdSocketPath = parseResult.GetValue(tappdSocket),
                StateDirectory = parseResult.GetValue(state) ?? (simulated ? ".privateml-agent" : "/var/lib/privateml/agent"),
                AppComposePath = parseResult.GetValue(appCompose)?.FullName,
                KmsUrls = parseResult.GetValue(kms) ?? [],
                EncryptedEnvPath = parseResult.GetValue(encryptedEnv),
                DecryptedEnvDirectory = parseResult.GetValue(decryptedEnvDir),
            };
            if (parseResult.GetValue(listen) is { } url)
            {
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
                {
                    error.WriteLine($"error: --listen must be an http URL, got '{url}'");
                    return ExitCodes.UsageOrInput;
                }

                options.ListenUrl = uri;
            }

            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            if (options.AppComposePath is { } compose && !File.Exists(compose))
            {
                error.WriteLine($"error: --app-compose {compose} does not exist");
                return ExitCodes.UsageOrInput;
            }

            var logging = LogLevels.Console(LogLevels.Parse(parseResult.GetValue(logLevel)!));
            PrivateMl.Tee.Simulator.SimulatedTdxDevice? ownedDevice = null;
            WebApplication app;
            try
            {
                if (simulated)
                {
                    app = GuestAgentHost.BuildSimulated(options, out var simulator, configureLogging: logging);
                    ownedDevice = simulator;
                    error.WriteLine("WARNING: SIMULATED TDX — quotes from this agent are signed by the simulator's root and prove nothing about hardware.");
                }
                else
                {
                    TdxGuestDevice device;
                    try
                    {
                        device = TdxDeviceDetector.Detect(DevicePaths);
                    }
                    catch (TdxDeviceException e)
                    {
                        error.WriteLine($"error: {e.Message}");
                        return ExitCodes.UsageOrInput;
                    }

                    var bootEvents = CcelReader.ReadOrNull() ?? [];
                    app = GuestAgentHost.Build(
                        options,
                        device,
                        services => services.AddSingleton(_ => RuntimeEventLog.Open(
                            device, new RuntimeEventLogOptions { LogFilePath = RuntimeEventLog.DefaultLogFilePath, BootEvents = bootEvents })),
                        logging);
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or ArgumentException
                or PrivateMl.Attestation.Verification.AttestationException or System.Security.Cryptography.CryptographicException)
            {
                ownedDevice?.Dispose();
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            try
            {
                await using (app)
                {
                    try
                    {
                        await app.StartAsync(cancellationToken);
                    }
                    catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or KmsClientException
                        or PrivateMl.Attestation.Verification.AttestationException or System.Security.Cryptography.CryptographicException)
                    {
                        error.WriteLine($"error: the agent could not start: {e.Message}");
                        return ExitCodes.UsageOrInput;
                    }

                    foreach (var line in KeySource(app.Services))
                    {
                        output.WriteLine(line);
                    }

                    output.WriteLine($"privateml agent serving{(simulated ? " (SIMULATED)" : "")}: "
                        + string.Join(", ", new[] { options.SocketPath, options.TappdSocketPath, options.ListenUrl?.ToString() }.Where(s => !string.IsNullOrEmpty(s))));
                    await UntilStopped.WaitAsync(cancellationToken);

                    await app.StopAsync(CancellationToken.None);
                }
            }
            finally
            {
                ownedDevice?.Dispose();
            }

            return ExitCodes.Accepted;
        });
        return command;
    }
}
