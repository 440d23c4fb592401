using System.CommandLine;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.Collateral;

namespace PrivateMl.Cli.Commands;

/// <summary>What <c>privateml verify</c> was asked to do.</summary>
internal sealed record VerifyRequest
{
    public string? UrlText { get; init; }

    public Uri? Url => UrlText is null ? null : Uri.TryCreate(UrlText, UriKind.Absolute, out var u) ? u : new Uri("invalid:" + Uri.EscapeDataString(UrlText));

    public FileInfo? Policy { get; init; }

    public FileInfo? Compose { get; init; }

    public string? Collateral { get; init; }

    public string? PccsText { get; init; }

    public Uri? Pccs => PccsText is null ? null : Uri.TryCreate(PccsText, UriKind.Absolute, out var u) ? u : new Uri("invalid:" + Uri.EscapeDataString(PccsText));

    public bool Offline { get; init; }

    public bool AllowSimulated { get; init; }

    public FileInfo? SimulatedRoot { get; init; }

    public string? Token { get; init; }

    public bool Json { get; init; }

    public FileInfo? Report { get; init; }

    public FileInfo? Bundle { get; init; }

    public FileInfo? Html { get; init; }

    public bool RequireGpu { get; init; }

    /// <summary>How many GPUs the node's evidence must cover (<c>--gpus</c>); null: any number, and none unless <see cref="RequireGpu"/>.</summary>
    public int? Gpus { get; init; }

    /// <summary>The app id the node must have measured (<c>--app-id</c>, 40 hex); null: not compared.</summary>
    public string? AppId { get; init; }

    /// <summary>Key-provider ids the node's keys may come from (<c>--key-provider</c>); empty: not compared.</summary>
    public IReadOnlyList<string> KeyProviders { get; init; } = [];

    public string SigningAlgo { get; init; } = "ecdsa";
}

/// <summary>
/// <c>privateml verify URL</c>: verifies a node on this machine and prints one line per check. Exit codes: 0 trusted,
/// 1 not trusted (any check failed, or the node could not be reached), 2 usage or input error.
/// </summary>
internal static class VerifyCommand
{
    public static readonly Uri IntelPcs = new("https://api.trustedservices.intel.com/");

    public static Command Create()
    {
        var url = new Argument<string?>("URL") { Description = "Base URL of the node (its gateway), e.g. http://127.0.0.1:8000", Arity = ArgumentArity.ZeroOrOne };
        var policy = new Option<FileInfo>("--policy") { Description = "Policy JSON file (default: UpToDate TCB only, no debug TD, no simulated evidence)" };
        var compose = new Option<FileInfo>("--compose") { Description = "The app-compose.json the node must run (compared by SHA-256 with the measured compose hash)" };
        var collateral = new Option<string>("--collateral") { Description = "Collateral directory or bundle (dcap-qvl JSON); with --pccs it is a cache" };
        var pccs = new Option<string>("--pccs") { Description = "PCCS or Intel PCS base URL to fetch collateral from (default: Intel PCS; with --allow-simulated and no --collateral, the node's simulated PCCS at URL/pccs)" };
        var offline = new Option<bool>("--offline") { Description = "Never fetch collateral over the network (needs --collateral)" };
        var allowSimulated = new Option<bool>("--allow-simulated") { Description = "Accept evidence from the TDX simulator (the result says SIMULATED)" };
        var simulatedRoot = new Option<FileInfo>("--simulated-root") { Description = "Pin the simulator's root certificate (DER or PEM) instead of the one the quote carries" };
        var token = new Option<string>("--token") { Description = "Bearer token for the node (default: $PRIVATEML_API_KEY)" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text" };
        var report = new Option<FileInfo>("--report") { Description = "Write the evidence bundle (report, collateral, verdict) to FILE" };
        var bundle = new Option<FileInfo>("--bundle") { Description = "Re-verify an evidence bundle offline instead of contacting a node" };
        var html = new Option<FileInfo>("--html") { Description = "Write a self-contained HTML report page to FILE" };
        var requireGpu = RequireGpuOption();
        var gpus = GpusOption();
        var algo = new Option<string>("--signing-algo") { Description = "Which signing key to attest: ecdsa (default) or ed25519", DefaultValueFactory = _ => "ecdsa" };
        var keyProviders = KeyProviderOption();
        var appId = AppIdOption();
        var command = new Command("verify", "Verify a confidential LLM node yourself: quote, collateral, policy, key and nonce binding, event log, app identity, GPU evidence (exit 0 trusted, 1 not trusted, 2 usage or input error)")
        {
            url, policy, compose, collateral, pccs, offline, allowSimulated, simulatedRoot, token, json, report, bundle, html, requireGpu, gpus, algo, keyProviders, appId,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(
            new VerifyRequest
            {
                UrlText = parse.GetValue(url),
                Policy = parse.GetValue(policy),
                Compose = parse.GetValue(compose),
                Collateral = parse.GetValue(collateral),
                PccsText = parse.GetValue(pccs),
                Offline = parse.GetValue(offline),
                AllowSimulated = parse.GetValue(allowSimulated),
                SimulatedRoot = parse.GetValue(simulatedRoot),
                Token = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("PRIVATEML_API_KEY"),
                Json = parse.GetValue(json),
                Report = parse.GetValue(report),
                Bundle = parse.GetValue(bundle),
                Html = parse.GetValue(html),
                RequireGpu = parse.GetValue(requireGpu),
                Gpus = parse.GetValue(gpus),
                KeyProviders = parse.GetValue(keyProviders) ?? [],
                AppId = parse.GetValue(appId),
                SigningAlgo = parse.GetValue(algo) ?? "ecdsa",
            },
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error,
            handler: null,
            cancellationToken));
        return command;
    }

    internal static async Task<int> RunAsync(VerifyRequest request, TextWriter output, TextWriter error, HttpMessageHandler? handler, CancellationToken cancellationToken)
    {
        if (request.Bundle is null && request.Url is null)
        {
            error.WriteLine("error: give the node's URL, or --bundle FILE to re-verify saved evidence");
            return ExitCodes.UsageOrInput;
        }

        if (request.Bundle is not null && request.Url is not null)
        {
            error.WriteLine("error: give either a URL or --bundle FILE, not both");
            return ExitCodes.UsageOrInput;
        }

        if (request.Offline && request.Pccs is not null)
        {
            error.WriteLine("error: --offline never touches the network; drop --pccs");
            return ExitCodes.UsageOrInput;
        }

        if (request.Url is not null && request.Offline && request.Collateral is null)
        {
            error.WriteLine("error: --offline needs --collateral DIR (a cache or bundle of collateral)");
            return ExitCodes.UsageOrInput;
        }

        foreach (var (text, uri) in new[] { (request.UrlText, request.Url), (request.PccsText, request.Pccs) })
        {
            if (uri is not null && uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
            {
                error.WriteLine($"error: {text} is not an http(s) URL");
                return ExitCodes.UsageOrInput;
            }
        }

        if (request.SigningAlgo is not ("ecdsa" or "ed25519"))
        {
            error.WriteLine("error: --signing-algo must be ecdsa or ed25519");
            return ExitCodes.UsageOrInput;
        }

        var options = await TryBuildOptionsAsync(request, error, cancellationToken);
        if (options is null)
        {
            return ExitCodes.UsageOrInput;
        }

        using var http = handler is null ? new HttpClient { Timeout = TimeSpan.FromSeconds(60) } : new HttpClient(handler, disposeHandler: false);
        NodeVerificationResult result;
        if (request.Bundle is not null)
        {
            EvidenceBundle bundle;
            try
            {
                var bytes = await File.ReadAllBytesAsync(request.Bundle.FullName, cancellationToken);
                bundle = EvidenceBundle.Parse(bytes);
            }
            catch (AttestationException e)
            {
                error.WriteLine($"error: {request.Bundle.FullName}: {e.Message} [{e.Code}]");
                return ExitCodes.UsageOrInput;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"error: cannot read {request.Bundle.FullName}: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            result = await new NodeVerifier(http, options).VerifyBundleAsync(bundle, cancellationToken);
        }
        else
        {
            options = options with { Collateral = CollateralSource(request, http) };
            result = await new NodeVerifier(http, options).VerifyAsync(request.Url!, cancellationToken);
        }

        if (request.Report is not null)
        {
            await File.WriteAllBytesAsync(request.Report.FullName, EvidenceBundle.Write(result), cancellationToken);
        }

        if (request.Html is not null)
        {
            await File.WriteAllTextAsync(request.Html.FullName, NodeReportHtml.Render(result), cancellationToken);
        }

        if (request.Json)
        {
            output.WriteLine(NodeResultJson.Serialize(result));
        }
        else
        {
            WriteText(result, request.Bundle is not null, output);
            if (request.Report is not null)
            {
                output.WriteLine($"evidence bundle written to {request.Report.FullName}");
            }

            if (request.Html is not null)
            {
                output.WriteLine($"HTML report written to {request.Html.FullName}");
            }
        }

        return result.Trusted ? ExitCodes.Accepted : ExitCodes.Rejected;
    }

    /// <summary><c>--key-provider ID</c> (repeatable), shared by verify and chat.</summary>
    internal static Option<string[]> KeyProviderOption() => new("--key-provider")
    {
        Description = "Require the node's keys to come from this key provider: the id its measured key-provider event names (for a KMS, the hex root CA key `privateml kms serve` prints); repeatable",
    };

    /// <summary><c>--require-gpu</c>, shared by verify and chat.</summary>
    internal static Option<bool> RequireGpuOption() => new("--require-gpu") { Description = "Fail when the node sends no GPU evidence" };

    /// <summary><c>--gpus N</c>, shared by verify and chat.</summary>
    internal static Option<int?> GpusOption() => new("--gpus")
    {
        Description = "Require GPU evidence from exactly this many GPUs (the node's whole host: evidence from fewer GPUs than the model runs on proves nothing about the others); implies --require-gpu",
    };

    /// <summary><c>--app-id HEX</c>, shared by verify and chat.</summary>
    internal static Option<string> AppIdOption() => new("--app-id")
    {
        Description = "Require the node to run this app id (40 hex): follows the app across compose upgrades its KMS admits (pair it with --key-provider)",
    };

    /// <summary>The verifier options a verify/chat request asks for, or null (after writing why) on bad input.</summary>
    internal static async Task<NodeVerifierOptions?> TryBuildOptionsAsync(VerifyRequest request, TextWriter error, CancellationToken cancellationToken)
    {
        if (request.KeyProviders.FirstOrDefault(id => id.Length == 0 || id.Length % 2 != 0 || !id.All(char.IsAsciiHexDigit)) is { } badId)
        {
            error.WriteLine($"error: --key-provider must be a hex key-provider id, got '{badId}'");
            return null;
        }

        if (request.AppId is { } appIdText && (appIdText.Length != 40 || !appIdText.All(char.IsAsciiHexDigit)))
        {
            error.WriteLine($"error: --app-id must be 40 hex characters (20 bytes), got '{appIdText}'");
            return null;
        }

        if (request.Gpus is < 1 or > GpuEvidencePayload.MaxItems)
        {
            error.WriteLine($"error: --gpus must be 1 to {GpuEvidencePayload.MaxItems}, got {request.Gpus}");
            return null;
        }

        NodeVerifierOptions options;
        try
        {
            options = new NodeVerifierOptions
            {
                Policy = request.Policy is null ? AttestationPolicy.Default : AttestationPolicy.Load(request.Policy.FullName),
                AllowSimulated = request.AllowSimulated,
                SimulatedRootCertificate = request.SimulatedRoot is null ? (ReadOnlyMemory<byte>?)null : ReadCertificate(request.SimulatedRoot),
                ExpectedAppCompose = request.Compose is null ? (ReadOnlyMemory<byte>?)null : await File.ReadAllBytesAsync(request.Compose.FullName, cancellationToken),
                RequireGpuEvidence = request.RequireGpu || request.Gpus is not null,
                Gpu = new GpuVerifierOptions { ExpectedGpuCount = request.Gpus },
                ExpectedKeyProviderIds = request.KeyProviders.Count == 0 ? null : request.KeyProviders,
                ExpectedAppId = request.AppId is null ? (ReadOnlyMemory<byte>?)null : Convert.FromHexString(request.AppId),
                SigningAlgo = request.SigningAlgo,
                ApiKey = request.Token,
            };
        }
        catch (AttestationException e)
        {
            error.WriteLine($"error: {e.Message} [{e.Code}]");
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or System.Security.Cryptography.CryptographicException)
        {
            error.WriteLine($"error: {e.Message}");
            return null;
        }

        return options;
    }

    internal static ICollateralSource CollateralSource(VerifyRequest request, HttpClient http)
    {
        if (request.Offline || (request.Collateral is not null && request.Pccs is null))
        {
            return new OfflineBundleSource(request.Collateral!);
        }

        ICollateralSource source = new RetryingCollateralSource(new PccsCollateralSource(http, request.Pccs ?? DefaultPccs(request)), TimeProvider.System);
        return request.Collateral is null ? source : new CachingCollateralSource(source, request.Collateral, TimeProvider.System);
    }

    /// <summary>
    /// Intel PCS has no collateral for the simulator's made-up platform, so with --allow-simulated (and no --pccs or
    /// --collateral) the node's own simulated PCCS at <c>URL/pccs</c> is asked; its root is still trusted only
    /// because --allow-simulated says so, and the result still says SIMULATED.
    /// </summary>
    private static Uri DefaultPccs(VerifyRequest request) =>
        request.AllowSimulated && request.Url is not null && request.Collateral is null
            ? new Uri(request.Url.ToString().TrimEnd('/') + SimulatedPccsPath)
            : IntelPcs;

    /// <summary>Where <c>privateml up</c> and the development VM serve the simulator's collateral.</summary>
    public const string SimulatedPccsPath = "/pccs";

    internal static void WriteText(NodeVerificationResult result, bool fromBundle, TextWriter output)
    {
        var target = result.BaseAddress ?? "the node";
        output.WriteLine(fromBundle
            ? $"Re-verifying saved evidence from {target}, offline, as of {result.VerifiedAt:u}"
            : $"Verifying {target} with nonce {Convert.ToHexStringLower(result.Nonce.Span)}");
        foreach (var c in result.Checks)
        {
            output.WriteLine(c.Outcome switch
            {
                CheckOutcome.Passed => $"✔ {c.Name}: {c.Detail}",
                CheckOutcome.Failed => $"✘ {c.Name}: {c.Detail} [{c.Code}]",
                _ => $"– {c.Name}: {c.Detail}",
            });
        }

        var failures = result.Failures.ToList();
        if (result.Trusted)
        {
            output.WriteLine(result.IsSimulated
                ? $"TRUSTED (SIMULATED): every check passed, but the evidence comes from a simulator, not real TDX hardware; answers signed by {result.SigningAddress} come from that simulated node"
                : $"TRUSTED: every check passed; answers signed by {result.SigningAddress} come from this attested node");
        }
        else
        {
            output.WriteLine($"NOT TRUSTED: {failures.Count} check{(failures.Count == 1 ? string.Empty : "s")} failed" + (failures.Count > 0 ? $" (first: {failures[0].Name})" : string.Empty));
        }
    }

    private static byte[] ReadCertificate(FileInfo file)
    {
        var bytes = File.ReadAllBytes(file.FullName);
        var text = System.Text.Encoding.ASCII.GetString(bytes);
        return System.Security.Cryptography.PemEncoding.TryFind(text, out var fields)
            ? Convert.FromBase64String(text[fields.Base64Data])
            : bytes;
    }
}
