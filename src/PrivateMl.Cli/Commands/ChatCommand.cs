using System.CommandLine;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.Client.E2ee.Aci;
using PrivateMl.Client.E2ee.Ehbp;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml chat URL [PROMPT]</c>: attests the node first (as <c>privateml verify</c>), then streams an answer,
/// fetches its signature and receipt and checks them against the key attested in this run. Exit codes: 0 verified
/// answer, 1 node not trusted or answer unsigned/tampered, 2 usage or input error.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var url = new Argument<string>("URL") { Description = "Base URL of the node (its gateway)" };
        var prompt = new Argument<string?>("PROMPT") { Description = "The question (default: read from standard input)", Arity = ArgumentArity.ZeroOrOne };
        var model = new Option<string>("--model") { Description = "Model name sent in the request (default: the first model the node lists at /v1/models)" };
        var noStream = new Option<bool>("--no-stream") { Description = "Ask for one JSON answer instead of a stream" };
        var collateral = new Option<string>("--collateral") { Description = "Collateral directory or bundle; with --pccs it is a cache" };
        var pccs = new Option<string>("--pccs") { Description = "PCCS or Intel PCS base URL (default: Intel PCS)" };
        var offline = new Option<bool>("--offline") { Description = "Never fetch collateral over the network (needs --collateral)" };
        var allowSimulated = new Option<bool>("--allow-simulated") { Description = "Accept a simulated node (the result says SIMULATED)" };
        var policy = new Option<FileInfo>("--policy") { Description = "Policy JSON file" };
        var compose = new Option<FileInfo>("--compose") { Description = "The app-compose.json the node must run" };
        var token = new Option<string>("--token") { Description = "Bearer token for the node (default: $PRIVATEML_API_KEY)" };
        var algo = new Option<string>("--signing-algo") { Description = "ecdsa (default) or ed25519", DefaultValueFactory = _ => "ecdsa" };
        var keyProviders = VerifyCommand.KeyProviderOption();
        var appId = VerifyCommand.AppIdOption();
        var requireGpu = VerifyCommand.RequireGpuOption();
        var gpus = VerifyCommand.GpusOption();
        var saveReceipt = new Option<FileInfo>("--save-receipt") { Description = "Write the answer's receipt to FILE (check it later with privateml receipt verify)" };
        var e2ee = new Option<string>("--e2ee") { Description = "End-to-end encrypt to a key attested in this run: aci (ACI E2EE v2 fields) or ehbp (HPKE whole body); never falls back to plaintext" };
        e2ee.AcceptOnlyFromAmong("none", "aci", "ehbp");
        var e2eeSuite = new Option<string>("--e2ee-suite") { Description = "ACI E2EE v2 suite: x25519 (default) or secp256k1", DefaultValueFactory = _ => "x25519" };
        e2eeSuite.AcceptOnlyFromAmong("x25519", "secp256k1");
        var command = new Command("chat", "Ask an attested node a question and verify the signed answer end to end (exit 0 verified, 1 not, 2 usage error)")
        {
            url, prompt, model, noStream, collateral, pccs, offline, allowSimulated, policy, compose, token, algo, saveReceipt, e2ee, e2eeSuite, keyProviders, appId, requireGpu, gpus,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var request = new VerifyRequest
            {
                UrlText = parse.GetValue(url),
                Collateral = parse.GetValue(collateral),
                PccsText = parse.GetValue(pccs),
                Offline = parse.GetValue(offline),
                AllowSimulated = parse.GetValue(allowSimulated),
                Policy = parse.GetValue(policy),
                Compose = parse.GetValue(compose),
                Token = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("PRIVATEML_API_KEY"),
                SigningAlgo = parse.GetValue(algo) ?? "ecdsa",
                KeyProviders = parse.GetValue(keyProviders) ?? [],
                AppId = parse.GetValue(appId),
                RequireGpu = parse.GetValue(requireGpu),
                Gpus = parse.GetValue(gpus),
            };
            var question = parse.GetValue(prompt) ?? await Console.In.ReadToEndAsync(cancellationToken);
            var modelName = parse.GetValue(model) ?? await NodeModels.FirstAsync(request.Url, request.Token, handler: null, cancellationToken);
            if (modelName is null)
            {
                // Said, not silent: the node's answer (likely a 404 for an unknown model) is still shown and verified.
                parse.InvocationConfiguration.Error.WriteLine("warning: the node's /v1/models list could not be read; asking for model \"default\" (give --model NAME)");
                modelName = "default";
            }
            switch (parse.GetValue(e2ee))
            {
                case "aci":
                    var suite = parse.GetValue(e2eeSuite) == "secp256k1" ? AciSuite.Secp256k1 : AciSuite.X25519;
                    return await RunAciAsync(request, question, modelName, !parse.GetValue(noStream), suite, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken);
                case "ehbp":
                    return await RunEhbpAsync(request, question, modelName, !parse.GetValue(noStream), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken);
            }

            return await RunAsync(request, question, modelName, !parse.GetValue(noStream), parse.GetValue(saveReceipt), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, cancellationToken);
        });
        return command;
    }

    /// <summary>
    /// <c>--e2ee aci</c>: verifies the node with its ACI report (the quote binds the workload keyset and this run's
    /// nonce), then encrypts the prompt to the attested E2EE key of <paramref name="suite"/> and checks the gateway's
    /// signature over the exact bytes. No plaintext fallback: every refusal exits 1 with its e2ee_* code.
    /// </summary>
    internal static async Task<int> RunAciAsync(VerifyRequest request, string prompt, string model, bool stream, AciSuite suite, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        var (attestation, baseAddress, exit) = await AttestKeysetAsync(request, http, output, error, cancellationToken);
        if (attestation?.Keyset is null)
        {
            return exit;
        }

        output.WriteLine($"✔ node attested{(attestation.IsSimulated ? " (SIMULATED)" : string.Empty)}: keyset {attestation.Keyset.Digest}; encrypting to its {suite.Algo()} key");
        try
        {
            var answer = await new AciE2eeChat(http, baseAddress!, request.Token).SendAsync(
                attestation, VerifiedChat.RequestBody(model, prompt, stream), AciPayload.ChatEndpoint, suite, delta => output.Write(delta), holdUntilVerified: !stream, cancellationToken);
            output.WriteLine();
            output.WriteLine($"VERIFIED: end-to-end encrypted ({answer.Algo}); the gateway's attested key {attestation.SigningAddress} signed exactly the bytes sent and received");
            return ExitCodes.Accepted;
        }
        catch (AciE2eeException e)
        {
            output.WriteLine();
            error.WriteLine($"REFUSED [{e.Code}]: {e.Message}");
            if (stream && e.Error == AciE2eeError.StreamIntegrity)
            {
                error.WriteLine("the text shown above is void: it is not what the attested gateway sent");
            }

            return ExitCodes.Rejected;
        }
        catch (HttpRequestException e)
        {
            error.WriteLine($"error: the node did not answer: {e.Message}");
            return ExitCodes.Rejected;
        }
    }

    /// <summary>
    /// <c>--e2ee ehbp</c>: verifies the node with its ACI report (the quote binds the workload keyset and this run's
    /// nonce), requires its <c>/.well-known/hpke-keys</c> to serve the keyset's EHBP key, then sends the whole request
    /// body HPKE-encrypted and opens the answer frame by frame (a tampered, dropped, reordered or truncated frame stops
    /// it), and checks the gateway's signature and receipt over the ciphertext. No plaintext fallback.
    /// </summary>
    internal static async Task<int> RunEhbpAsync(VerifyRequest request, string prompt, string model, bool stream, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        var (attestation, baseAddress, exit) = await AttestKeysetAsync(request, http, output, error, cancellationToken);
        if (attestation?.Keyset is null)
        {
            return exit;
        }

        try
        {
            using var ehbp = await EhbpChatTransport.ConnectAsync(attestation, baseAddress!, request.Token, cancellationToken: cancellationToken);
            output.WriteLine($"✔ node attested{(attestation.IsSimulated ? " (SIMULATED)" : string.Empty)}: keyset {attestation.Keyset.Digest}; encrypting whole bodies (EHBP) to its HPKE key");
            var answer = await ehbp.Chat.SendAsync(VerifiedChat.RequestBody(model, prompt, stream), attestation.SigningAddress!, attestation.Report!.SigningAlgo, delta => output.Write(delta), cancellationToken);
            return WriteAnswer(answer, attestation, output, "end-to-end encrypted (EHBP); ");
        }
        catch (AttestationException e)
        {
            output.WriteLine();
            error.WriteLine($"REFUSED [{e.Code}]: {e.Message}");
            return ExitCodes.Rejected;
        }
        catch (HttpRequestException e)
        {
            error.WriteLine($"error: the node did not answer: {e.Message}");
            return ExitCodes.Rejected;
        }
    }

    /// <summary>Verifies the node with its ACI report; the attestation only when it is trusted and binds its keyset to this run's nonce.</summary>
    private static async Task<(NodeVerificationResult? Attestation, Uri? BaseAddress, int Exit)> AttestKeysetAsync(
        VerifyRequest request, HttpClient http, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var (options, baseAddress, exit) = await PrepareAsync(request, error, cancellationToken);
        if (options is null)
        {
            return (null, null, exit);
        }

        var attestation = await new NodeVerifier(http, options with { Collateral = VerifyCommand.CollateralSource(request, http), ReportFormat = NodeReportFormat.Aci }).VerifyAsync(baseAddress!, cancellationToken);
        if (!attestation.Trusted || attestation.Keyset is null)
        {
            VerifyCommand.WriteText(attestation, fromBundle: false, output);
            output.WriteLine("not sending the prompt: the node or its keyset is not attested");
            return (null, null, ExitCodes.Rejected);
        }

        return (attestation, baseAddress, ExitCodes.Accepted);
    }

    private static async Task<(NodeVerifierOptions? Options, Uri? BaseAddress, int Exit)> PrepareAsync(VerifyRequest request, TextWriter error, CancellationToken cancellationToken)
    {
        if (request.Url is not { } baseAddress || (baseAddress.Scheme != Uri.UriSchemeHttp && baseAddress.Scheme != Uri.UriSchemeHttps))
        {
            error.WriteLine($"error: {request.UrlText} is not an http(s) URL");
            return (null, null, ExitCodes.UsageOrInput);
        }

        if (request.Offline && (request.Collateral is null || request.Pccs is not null))
        {
            error.WriteLine("error: --offline needs --collateral DIR and no --pccs");
            return (null, null, ExitCodes.UsageOrInput);
        }

        var options = await VerifyCommand.TryBuildOptionsAsync(request, error, cancellationToken);
        return (options, baseAddress, ExitCodes.UsageOrInput);
    }

    internal static async Task<int> RunAsync(VerifyRequest request, string prompt, string model, bool stream, FileInfo? saveReceipt, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        if (request.Url is not { } baseAddress || (baseAddress.Scheme != Uri.UriSchemeHttp && baseAddress.Scheme != Uri.UriSchemeHttps))
        {
            error.WriteLine($"error: {request.UrlText} is not an http(s) URL");
            return ExitCodes.UsageOrInput;
        }

        if (request.Offline && (request.Collateral is null || request.Pccs is not null))
        {
            error.WriteLine("error: --offline needs --collateral DIR and no --pccs");
            return ExitCodes.UsageOrInput;
        }

        if (request.SigningAlgo is not ("ecdsa" or "ed25519"))
        {
            error.WriteLine("error: --signing-algo must be ecdsa or ed25519");
            return ExitCodes.UsageOrInput;
        }

        var options = await VerifyCommand.TryBuildOptionsAsync(request, error, cancellationToken);
        if (options is null)
        {
            return ExitCodes.UsageOrInput;
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        var attestation = await new NodeVerifier(http, options with { Collateral = VerifyCommand.CollateralSource(request, http) }).VerifyAsync(baseAddress, cancellationToken);
        if (!attestation.Trusted)
        {
            VerifyCommand.WriteText(attestation, fromBundle: false, output);
            output.WriteLine("not sending the prompt: the node is not trusted");
            return ExitCodes.Rejected;
        }

        output.WriteLine($"✔ node attested{(attestation.IsSimulated ? " (SIMULATED)" : string.Empty)}: answers must be signed by {attestation.SigningAddress}");
        var chat = new VerifiedChat(http, baseAddress, request.Token);
        ChatVerification answer;
        try
        {
            answer = await chat.SendAsync(VerifiedChat.RequestBody(model, prompt, stream), attestation.SigningAddress!, request.SigningAlgo, delta => output.Write(delta), cancellationToken);
        }
        catch (HttpRequestException e)
        {
            error.WriteLine($"error: the node did not answer: {e.Message}");
            return ExitCodes.Rejected;
        }

        if (saveReceipt is not null && answer.ReceiptJson is not null)
        {
            await File.WriteAllTextAsync(saveReceipt.FullName, answer.ReceiptJson, cancellationToken);
        }

        return WriteAnswer(answer, attestation, output, string.Empty, saveReceipt is not null && answer.ReceiptJson is not null ? saveReceipt : null);
    }

    private static int WriteAnswer(ChatVerification answer, NodeVerificationResult attestation, TextWriter output, string how, FileInfo? savedReceipt = null)
    {
        output.WriteLine();
        foreach (var c in answer.Checks)
        {
            output.WriteLine(c.Outcome switch
            {
                CheckOutcome.Passed => $"✔ {c.Name}: {c.Detail}",
                CheckOutcome.Failed => $"✘ {c.Name}: {c.Detail} [{c.Code}]",
                _ => $"– {c.Name}: {c.Detail}",
            });
        }

        if (savedReceipt is not null)
        {
            output.WriteLine($"receipt written to {savedReceipt.FullName}");
        }

        var unsigned = answer.Checks.Any(c => c.Detail.StartsWith("UNSIGNED", StringComparison.Ordinal));
        var tampered = answer.Checks.Any(c => c.Outcome == CheckOutcome.Failed && c.Detail.StartsWith("TAMPERED", StringComparison.Ordinal));
        var refused = answer.Checks.FirstOrDefault(c => c.Name == VerifiedChat.TransportCheck && c.Outcome == CheckOutcome.Failed);
        output.WriteLine(answer.Verified
            ? $"VERIFIED: {how}this answer was signed by the attested key {attestation.SigningAddress} over exactly the bytes received"
            : refused is not null ? $"REFUSED [{refused.Code}]: the encrypted answer did not authenticate; the text shown above is void"
            : unsigned ? "UNSIGNED: the node did not sign this answer; do not trust it"
            : tampered ? "TAMPERED: the bytes received are not the bytes the node signed"
            : "NOT VERIFIED: see the failed checks above");
        return answer.Verified ? ExitCodes.Accepted : ExitCodes.Rejected;
    }
}
