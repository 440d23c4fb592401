using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral;
using PrivateMl.Kms;
using PrivateMl.Kms.Hosting;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Onboarding;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.RaTls;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml kms serve|rotate|retire|onboard|epochs</c>: the attestation-gated KMS (dstack's KMS RPC over RA-TLS)
/// and its key epochs; <c>kms list|add|remove</c> (trusted KMS signers, client side) come from <see cref="KmsTrustCommands"/>. <c>--simulate</c> trusts a simulator's root only and says SIMULATED.
/// </summary>
internal static class KmsCommands
{
    private const string DefaultState = "/var/lib/privateml/kms";
    private const string DefaultSimulatedState = ".privateml-kms";
    private const string DefaultSimulator = ".privateml-agent/tdx-simulator";
    private static readonly Uri IntelPcs = new("https://api.trustedservices.intel.com");

    public static Command Create()
    {
        var command = new Command("kms", "Key management service: releases app keys only over RA-TLS to attested CVMs (dstack-compatible), with key epochs");
        command.Subcommands.Add(Serve());
        command.Subcommands.Add(Rotate());
        command.Subcommands.Add(Retire());
        command.Subcommands.Add(Epochs());
        command.Subcommands.Add(Onboard());
        foreach (var trust in KmsTrustCommands.Create())
        {
            command.Subcommands.Add(trust);
        }

        return command;
    }

    private sealed record CommonOptions(
        Option<string?> State, Option<FileInfo?> Policy, Option<bool> Simulate, Option<string> Simulator, Option<Uri?> Pccs, Option<string?> AgentSocket)
    {
        public static CommonOptions Create() => new(
            new Option<string?>("--state") { Description = $"State directory (root keys, epochs; files 0600); default {DefaultState}, or {DefaultSimulatedState} with --simulate" },
            new Option<FileInfo?>("--policy") { Description = "KMS policy JSON (TCB floor, OS images, apps, compose hashes, replicas, webhook); default: UpToDate TCB, no debug, any app" },
            new Option<bool>("--simulate") { Description = "Trust the simulator's root (not Intel's): SIMULATED quotes only, for development" },
            new Option<string>("--simulator") { Description = $"Simulator state to trust with --simulate (the agent's <state>/tdx-simulator); default {DefaultSimulator}", DefaultValueFactory = _ => DefaultSimulator },
            UrlOption("--pccs", "PCCS or Intel PCS URL for DCAP collateral (default Intel PCS)"),
            new Option<string?>("--agent-socket") { Description = "Guest agent socket for this KMS's own quotes (server certificate, onboarding); none by default" });

        public void AddTo(Command command)
        {
            command.Options.Add(State);
            command.Options.Add(Policy);
            command.Options.Add(Simulate);
            command.Options.Add(Simulator);
            command.Options.Add(Pccs);
            command.Options.Add(AgentSocket);
        }
    }

    /// <summary>What a serving or onboarding KMS trusts, and its own quotes; disposes what it opened.</summary>
    private sealed class Setup : IAsyncDisposable
    {
        public required KmsTrust Trust { get; init; }

        public required KmsPolicy Policy { get; init; }

        public required string StateDirectory { get; init; }

        public RaTlsQuoteSource? Quotes { get; init; }

        public bool Simulated { get; init; }

        public SimulatedKmsTd? SimulatedTd { get; init; }

        public HttpClient? Http { get; init; }

        public DstackAgentClient? Agent { get; init; }

        public ValueTask DisposeAsync()
        {
            SimulatedTd?.Dispose();
            Http?.Dispose();
            Agent?.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private static async Task<Setup?> OpenAsync(ParseResult parse, CommonOptions options, TextWriter error)
    {
        var simulated = parse.GetValue(options.Simulate);
        var state = parse.GetValue(options.State) ?? (simulated ? DefaultSimulatedState : DefaultState);
        KmsPolicy policy;
        try
        {
            policy = parse.GetValue(options.Policy) is { } file ? KmsPolicy.Load(file.FullName) : KmsPolicy.Default;
        }
        catch (Exception e) when (e is AttestationException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: the policy could not be read: {e.Message}");
            return null;
        }

        var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        if (simulated)
        {
            SimulatedKmsTd td;
            try
            {
                td = await SimulatedKmsTd.OpenAsync(parse.GetValue(options.Simulator)!, TimeProvider.System);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or CryptographicException)
            {
                http.Dispose();
                error.WriteLine($"error: the simulator could not be opened: {e.Message}");
                return null;
            }

            error.WriteLine("WARNING: SIMULATED KMS — it trusts the simulator's root, not Intel's; the keys it releases protect nothing.");
            return new Setup { Trust = td.Trust, Policy = policy, StateDirectory = state, Quotes = td.QuoteSource, Simulated = true, SimulatedTd = td, Http = http };
        }

        var collateral = new RetryingCollateralSource(new PccsCollateralSource(http, parse.GetValue(options.Pccs) ?? IntelPcs), TimeProvider.System);
        DstackAgentClient? agent = null;
        RaTlsQuoteSource? quotes = null;
        if (parse.GetValue(options.AgentSocket) is { } socket)
        {
            agent = new DstackAgentClient(socket);
            quotes = async (reportData, ct) =>
            {
                var quote = await agent.GetQuoteAsync(reportData, ct);
                return new RaTlsEvidence(quote.Quote, quote.EventLog);
            };
        }

        return new Setup { Trust = new KmsTrust(new DcapVerifierOptions(), collateral), Policy = policy, StateDirectory = state, Quotes = quotes, Http = http, Agent = agent };
    }

    private static Command Serve()
    {
        var common = CommonOptions.Create();
        var listen = UrlOption("--listen", "HTTPS listener (default https://127.0.0.1:8000)");
        var names = new Option<string[]>("--name") { Description = "DNS name(s) for the server certificate (default localhost)", AllowMultipleArgumentsPerToken = true };
        var logLevel = LogLevels.Option();
        var command = new Command("serve", "Serve dstack's KMS RPC (/prpc/GetAppKey, GetAppEnvEncryptPubKey, GetMeta, GetTempCaCert, GetKmsKey) over RA-TLS") { listen, names, logLevel };
        common.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var output = parse.InvocationConfiguration.Output;
            await using var setup = await OpenAsync(parse, common, error);
            if (setup is null)
            {
                return ExitCodes.UsageOrInput;
            }

            var options = new KmsOptions
            {
                StateDirectory = setup.StateDirectory,
                ListenUrl = parse.GetValue(listen) ?? new Uri("https://127.0.0.1:8000"),
                Policy = setup.Policy,
                Simulated = setup.Simulated,
                QuoteSource = setup.Quotes,
                ServerNames = parse.GetValue(names) is { Length: > 0 } given ? given : ["localhost"],
            };
            WebApplication app;
            try
            {
                options.Validate();
                app = await KmsHost.BuildAsync(options, setup.Trust, TimeProvider.System, setup.Http, LogLevels.Console(LogLevels.Parse(parse.GetValue(logLevel)!)), cancellationToken);
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or UnauthorizedAccessException or CryptographicException or InvalidOperationException)
            {
                error.WriteLine($"error: the KMS could not start: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            await using (app)
            {
                try
                {
                    await app.StartAsync(cancellationToken);
                }
                catch (Exception e) when (e is IOException or InvalidOperationException)
                {
                    error.WriteLine($"error: the KMS could not listen: {e.Message}");
                    return ExitCodes.UsageOrInput;
                }

                using (var roots = KmsRootKeys.Open(options.StateDirectory))
                {
                    output.WriteLine($"privateml kms serving{(setup.Simulated ? " (SIMULATED)" : "")} on {string.Join(", ", app.Urls)}");
                    output.WriteLine($"  root CA key (key-provider id): {Convert.ToHexStringLower(roots.RootCaSpki)}");
                    output.WriteLine($"  k256 root (GetMeta.k256_pubkey, trusted env signer): {Convert.ToHexStringLower(roots.K256PublicKey)}");
                    output.WriteLine($"  current key epoch: {new KeyEpochStore(options.StateDirectory, TimeProvider.System).Current.Current}");
                }

                await UntilStopped.WaitAsync(cancellationToken);

                await app.StopAsync(CancellationToken.None);
            }

            return ExitCodes.Accepted;
        });
        return command;
    }

    /// <summary>An absolute http(s) URL option (System.CommandLine has no Uri parser).</summary>
    internal static Option<Uri?> UrlOption(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result => ParseUrl(result, name, result.Tokens.Single().Value),
    };

    /// <summary>A repeatable absolute http(s) URL option (<c>NAME A NAME B</c> or <c>NAME A B</c>), in the order given.</summary>
    internal static Option<Uri[]> UrlsOption(string name, string description) => new(name)
    {
        Description = description,
        AllowMultipleArgumentsPerToken = true,
        CustomParser = result => [.. result.Tokens.Select(t => ParseUrl(result, name, t.Value)).OfType<Uri>()],
    };

    private static Uri? ParseUrl(System.CommandLine.Parsing.ArgumentResult result, string name, string text)
    {
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp))
        {
            return uri;
        }

        result.AddError($"{name} must be an absolute http(s) URL, got '{text}'");
        return null;
    }

    private static Option<string> StateOption() => new("--state")
    {
        Description = $"KMS state directory (default {DefaultState}; a --simulate KMS uses {DefaultSimulatedState})",
        DefaultValueFactory = _ => DefaultState,
    };

    private static Command Rotate()
    {
        var state = StateOption();
        var command = new Command("rotate", "Start a new key epoch: new requests get its keys; older epochs stay derivable until retired") { state };
        command.SetAction(parse => WithEpochs(parse, parse.GetValue(state)!, store =>
        {
            var epoch = store.Rotate();
            parse.InvocationConfiguration.Output.WriteLine($"key epoch {epoch} is current (active: {string.Join(", ", store.Current.Active)})");
        }));
        return command;
    }

    private static Command Retire()
    {
        var state = StateOption();
        var epoch = new Argument<uint>("EPOCH") { Description = "The epoch whose keys stop being derived (not the current one)" };
        var command = new Command("retire", "Retire a key epoch: its keys are no longer released (what was encrypted to it can no longer be decrypted)") { state, epoch };
        command.SetAction(parse => WithEpochs(parse, parse.GetValue(state)!, store =>
        {
            store.Retire(parse.GetValue(epoch));
            parse.InvocationConfiguration.Output.WriteLine($"key epoch {parse.GetValue(epoch)} retired (active: {string.Join(", ", store.Current.Active)})");
        }));
        return command;
    }

    private static Command Epochs()
    {
        var state = StateOption();
        var command = new Command("epochs", "List the key epochs") { state };
        command.SetAction(parse => WithEpochs(parse, parse.GetValue(state)!, store =>
        {
            var set = store.Current;
            foreach (var e in set.Epochs)
            {
                var status = e.Epoch == set.Current ? "current" : e.IsRetired ? $"retired {e.Retired!.Value.ToString("O", CultureInfo.InvariantCulture)}" : "active";
                parse.InvocationConfiguration.Output.WriteLine($"{e.Epoch}\t{status}");
            }
        }));
        return command;
    }

    private static int WithEpochs(ParseResult parse, string state, Action<KeyEpochStore> action)
    {
        var error = parse.InvocationConfiguration.Error;
        if (!KmsRootKeys.Exists(state))
        {
            error.WriteLine($"error: {state} holds no KMS root keys (pass --state; a --simulate KMS keeps its state in {DefaultSimulatedState})");
            return ExitCodes.UsageOrInput;
        }

        try
        {
            action(new KeyEpochStore(state, TimeProvider.System));
            return ExitCodes.Accepted;
        }
        catch (Exception e) when (e is InvalidOperationException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }
    }

    private static Command Onboard()
    {
        var common = CommonOptions.Create();
        var from = UrlOption("--from", "URL of the running KMS to replicate (https://host:port)");
        from.Required = true;
        var command = new Command("onboard", "Replicate the root keys of a running KMS into an empty state directory, over mutually attested RA-TLS") { from };
        common.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var error = parse.InvocationConfiguration.Error;
            await using var setup = await OpenAsync(parse, common, error);
            if (setup is null)
            {
                return ExitCodes.UsageOrInput;
            }

            if (setup.Quotes is null)
            {
                error.WriteLine("error: onboarding needs this KMS's own quotes: pass --agent-socket (or --simulate)");
                return ExitCodes.UsageOrInput;
            }

            var verifier = new RaTlsVerifier(new DcapVerifier(setup.Trust.Verifier), setup.Trust.Collateral, new QuoteReplayCache(), TimeProvider.System);
            try
            {
                using var roots = await KmsOnboarding.OnboardAsync(
                    parse.GetValue(from)!, setup.StateDirectory, setup.Quotes, verifier, setup.Policy, TimeProvider.System, cancellationToken);
                parse.InvocationConfiguration.Output.WriteLine(
                    $"onboarded{(setup.Simulated ? " (SIMULATED)" : "")} into {Path.GetFullPath(setup.StateDirectory)}: root CA key {Convert.ToHexStringLower(roots.RootCaSpki)}, k256 root {Convert.ToHexStringLower(roots.K256PublicKey)}");
                return ExitCodes.Accepted;
            }
            catch (AttestationException e)
            {
                error.WriteLine($"rejected ({e.Code}): {e.Message}");
                return ExitCodes.Rejected;
            }
            catch (KmsClientException e)
            {
                error.WriteLine($"rejected{(e.RefusalCode is { } code ? $" ({code})" : "")}: {e.Message}");
                return e.StatusCode is null ? ExitCodes.UsageOrInput : ExitCodes.Rejected;
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }
}
