using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Nvidia;
using PrivateMl.Tee.Gpu;
using PrivateMl.Tee.Simulator.Gpu;

namespace PrivateMl.Cli.Commands;

/// <summary><c>privateml gpu status|evidence|verify</c>: NVIDIA GPU confidential-computing evidence.</summary>
internal static class GpuCommands
{
    public static Command Create()
    {
        var command = new Command("gpu", "Collect and verify NVIDIA GPU confidential-computing evidence (H100/H200/B200)");
        command.Subcommands.Add(Status());
        command.Subcommands.Add(Evidence());
        command.Subcommands.Add(Verify());
        return command;
    }

    private static Command Status()
    {
        var cmd = new Command("status", "Show the GPUs and their confidential-computing state through NVML");
        cmd.SetAction(parse =>
        {
            try
            {
                var status = new NvmlGpuEvidenceSource().GetStatus();
                foreach (var line in status.Describe())
                {
                    Console.WriteLine(line);
                }

                PrintCalls(status.Calls, Console.Out);
                return status.EvidenceAvailable ? ExitCodes.Accepted : ExitCodes.Rejected;
            }
            catch (GpuDeviceException e)
            {
                Console.Error.WriteLine($"gpu status: {e.Message}");
                return ExitCodes.Rejected;
            }
        });
        return cmd;
    }

    private static Command Evidence()
    {
        var nonceOption = new Option<string?>("--nonce") { Description = "32-byte nonce as 64 hex digits (random when omitted)" };
        var simulate = new Option<bool>("--simulate") { Description = "Use SIMULATED GPUs instead of NVML (evidence signed by a simulated root, not NVIDIA)" };
        var gpus = new Option<int>("--gpus") { Description = "Number of simulated GPUs (with --simulate)", DefaultValueFactory = _ => 1 };
        var output = new Option<FileInfo?>("--out") { Description = "Write the payload JSON here instead of stdout" };
        var cmd = new Command("evidence", "Collect evidence from every GPU over one nonce; print the payload (nonce, evidence_list, arch) and verify it")
        {
            nonceOption, simulate, gpus, output,
        };
        cmd.SetAction(parse =>
        {
            byte[] nonce;
            try
            {
                nonce = ParseNonce(parse.GetValue(nonceOption)) ?? RandomNumberGenerator.GetBytes(SpdmLayout.NonceSize);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"gpu evidence: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            Console.Error.WriteLine($"nonce: {Convert.ToHexStringLower(nonce)}");
            GpuEvidencePayload payload;
            IRimSource? rims = null;
            var simulated = parse.GetValue(simulate);
            SimulatedGpuEvidenceSource? sim = null;
            var started = Stopwatch.GetTimestamp();
            try
            {
                if (simulated)
                {
                    var count = parse.GetValue(gpus);
                    if (count is < 1 or > SimulatedGpuEvidenceSource.MaxGpus)
                    {
                        Console.Error.WriteLine($"gpu evidence: --gpus must be 1 to {SimulatedGpuEvidenceSource.MaxGpus}");
                        return ExitCodes.UsageOrInput;
                    }

                    sim = new SimulatedGpuEvidenceSource(count);
                    Console.Error.WriteLine($"SIMULATED: {count} software GPU(s); evidence is signed by the simulated root, NOT by NVIDIA");
                    payload = sim.GetEvidenceAsync(nonce).AsTask().GetAwaiter().GetResult();
                    rims = sim.CreateRims();
                }
                else
                {
                    var source = new NvmlGpuEvidenceSource();
                    try
                    {
                        var status = source.GetStatus();
                        foreach (var line in status.Describe())
                        {
                            Console.Error.WriteLine(line);
                        }
                    }
                    catch (GpuDeviceException)
                    {
                        // Collect reports the same problem in words below.
                    }

                    GpuCcStatus collected;
                    (payload, collected, _) = source.Collect(nonce);
                    foreach (var line in NvmlGpuEvidenceSource.DescribeEvidenceCalls(collected.Calls))
                    {
                        Console.Error.WriteLine(line);
                    }
                }
            }
            catch (GpuDeviceException e)
            {
                foreach (var line in NvmlGpuEvidenceSource.DescribeEvidenceCalls(e.NvmlCalls))
                {
                    Console.Error.WriteLine(line);
                }

                var after = Stopwatch.GetElapsedTime(started).TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture);
                Console.Error.WriteLine($"gpu evidence: no evidence ({e.Error}) after {after} ms: {e.Message}");
                return ExitCodes.Rejected;
            }

            using (sim)
            {
                var elapsed = Stopwatch.GetElapsedTime(started);
                Console.Error.WriteLine($"collected evidence from {payload.Items.Count} GPU(s) in {elapsed.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture)} ms");
                var json = payload.ToJson();
                if (parse.GetValue(output) is { } file)
                {
                    File.WriteAllText(file.FullName, json);
                    Console.Error.WriteLine($"payload written to {file.FullName}");
                }
                else
                {
                    Console.WriteLine(json);
                }

                var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = simulated });
                var result = verifier.Verify(payload, nonce, DateTimeOffset.UtcNow, rims);
                PrintResult(result, Console.Error);
                return result.Accepted ? ExitCodes.Accepted : ExitCodes.Rejected;
            }
        });
        return cmd;
    }

    private static Command Verify()
    {
        var payloadArg = new Argument<FileInfo>("PAYLOAD") { Description = "GPU evidence payload JSON file (or a NEAR/dstack attestation report with an nvidia_payload field)" };
        var nonceOption = new Option<string>("--nonce") { Description = "The expected 32-byte nonce as 64 hex digits", Required = true };
        var rimDir = new Option<DirectoryInfo?>("--rim") { Description = "Directory of RIMs named <RIM ID>.xml or .swidtag; measurements are compared when given" };
        var rimService = new Option<string?>("--rim-service") { Description = $"Fetch RIMs missing from --rim from this RIM service (NVIDIA's is {RimServiceSource.DefaultBaseAddress})" };
        var rimCache = new Option<DirectoryInfo?>("--rim-cache") { Description = "Cache RIMs fetched with --rim-service in this directory (exact bytes; signatures are still checked each time)" };
        var offline = new Option<bool>("--offline") { Description = "Verify offline: OCSP reported as not checked, RIMs only from --rim" };
        var ocsp = new Option<bool>("--ocsp") { Description = "Check the device certificates' revocation online by OCSP, at each certificate's AIA responder (NVIDIA: http://ocsp.ndis.nvidia.com)" };
        var ocspUrl = new Option<string?>("--ocsp-url") { Description = $"Send the OCSP requests to this responder instead (implies --ocsp; NVIDIA's HTTPS endpoint is {NvidiaOcspClient.DefaultResponder})" };
        var allowOcspHold = new Option<bool>("--allow-ocsp-hold") { Description = "Accept certificates OCSP reports as on hold (certificateHold), as NVIDIA's allow_hold_cert" };
        var allowSimulated = new Option<bool>("--allow-simulated") { Description = "Accept evidence from the SIMULATED GPU root (never for production)" };
        var allowExpiredRims = new Option<bool>("--allow-expired-rims") { Description = "Accept RIMs whose signer certificates have expired (authenticity still checked)" };
        var gpuCount = new Option<int?>("--gpus") { Description = "Require exactly this many GPUs" };
        var nras = new Option<FileInfo?>("--nras-response") { Description = "Also check an NRAS response (second opinion); needs --jwks" };
        var jwks = new Option<FileInfo?>("--jwks") { Description = "NRAS JWKS captured with the response" };
        var at = new Option<string?>("--at") { Description = "Verify at this instant (ISO 8601) instead of now" };
        var cmd = new Command("verify", "Verify GPU evidence locally: nonce, chain to NVIDIA's root, SPDM signature, FWID, opaque data, RIMs")
        {
            payloadArg, nonceOption, rimDir, rimService, rimCache, offline, ocsp, ocspUrl, allowOcspHold, allowSimulated, allowExpiredRims, gpuCount, nras, jwks, at,
        };
        cmd.SetAction(parse =>
        {
            byte[] nonce;
            DateTimeOffset now;
            string json;
            try
            {
                nonce = ParseNonce(parse.GetValue(nonceOption))!;
                now = parse.GetValue(at) is { } s ? DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) : DateTimeOffset.UtcNow;
                json = ExtractPayload(File.ReadAllText(parse.GetValue(payloadArg)!.FullName));
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException or JsonException)
            {
                Console.Error.WriteLine($"gpu verify: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            Uri? rimServiceUri = null;
            if (parse.GetValue(rimService) is { } serviceText
                && (!Uri.TryCreate(serviceText, UriKind.Absolute, out rimServiceUri) || (rimServiceUri.Scheme != Uri.UriSchemeHttps && rimServiceUri.Scheme != Uri.UriSchemeHttp)))
            {
                Console.Error.WriteLine($"gpu verify: --rim-service must be an absolute http(s) URL, got '{serviceText}'");
                return ExitCodes.UsageOrInput;
            }

            if (rimServiceUri is not null && parse.GetValue(offline))
            {
                Console.Error.WriteLine("gpu verify: --rim-service cannot be combined with --offline");
                return ExitCodes.UsageOrInput;
            }

            if (parse.GetValue(rimCache) is not null && rimServiceUri is null)
            {
                Console.Error.WriteLine("gpu verify: --rim-cache needs --rim-service");
                return ExitCodes.UsageOrInput;
            }

            Uri? ocspResponder = null;
            if (parse.GetValue(ocspUrl) is { } ocspText
                && (!Uri.TryCreate(ocspText, UriKind.Absolute, out ocspResponder) || (ocspResponder.Scheme != Uri.UriSchemeHttps && ocspResponder.Scheme != Uri.UriSchemeHttp)))
            {
                Console.Error.WriteLine($"gpu verify: --ocsp-url must be an absolute http(s) URL, got '{ocspText}'");
                return ExitCodes.UsageOrInput;
            }

            var checkOcsp = parse.GetValue(ocsp) || ocspResponder is not null;
            if (checkOcsp && parse.GetValue(offline))
            {
                Console.Error.WriteLine("gpu verify: --ocsp/--ocsp-url cannot be combined with --offline");
                return ExitCodes.UsageOrInput;
            }

            if (!parse.GetValue(offline) && (rimServiceUri is null || !checkOcsp))
            {
                Console.Error.WriteLine("note: " + (checkOcsp ? "OCSP checked online" : "OCSP not checked (see --ocsp)") + "; " +
                    (rimServiceUri is null ? "RIMs from --rim only (see --rim-service)" : "RIMs come from " + (parse.GetValue(rimDir) is null ? string.Empty : "--rim, then ") + rimServiceUri));
            }

            var options = new GpuVerifierOptions
            {
                AllowSimulated = parse.GetValue(allowSimulated),
                AllowExpiredRimSigners = parse.GetValue(allowExpiredRims),
                RequireRims = parse.GetValue(rimDir) is not null || rimServiceUri is not null,
                ExpectedGpuCount = parse.GetValue(gpuCount),
                AllowOcspCertificateHold = parse.GetValue(allowOcspHold),
            };
            IRimSource? rims = parse.GetValue(rimDir) is { } dir ? new DirectoryRimSource(dir.FullName) : null;
            using var http = rimServiceUri is null && !checkOcsp ? null : new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            if (rimServiceUri is not null)
            {
                IRimSource service = new RimServiceSource(http!, rimServiceUri);
                if (parse.GetValue(rimCache) is { } cacheDir)
                {
                    service = new CachingRimSource(service, cacheDir.FullName, TimeSpan.FromDays(30));
                }

                rims = rims is null ? service : new FirstRimSource(rims, service);
            }

            GpuOcspResponses? ocspResponses = null;
            if (checkOcsp)
            {
                try
                {
                    // Fetching needs only the chains; a payload that does not parse is reported by the verifier.
                    var parsed = GpuEvidencePayload.Parse(json);
                    ocspResponses = new NvidiaOcspClient(http!, ocspResponder).FetchAsync(parsed).GetAwaiter().GetResult();
                }
                catch (AttestationException)
                {
                    ocspResponses = new GpuOcspResponses();
                }
            }

            GpuPayloadVerificationResult result;
            try
            {
                result = new GpuEvidenceVerifier(options).Verify(json, nonce, now, rims, ocspResponses);
            }
            catch (AttestationException e)
            {
                Console.Error.WriteLine($"gpu verify: RIM retrieval failed ({e.Code}): {e.Message}; not accepted");
                return ExitCodes.Rejected;
            }

            PrintResult(result, Console.Out);
            var accepted = result.Accepted;

            if (parse.GetValue(nras) is { } nrasFile)
            {
                if (parse.GetValue(jwks) is not { } jwksFile)
                {
                    Console.Error.WriteLine("gpu verify: --nras-response needs --jwks");
                    return ExitCodes.UsageOrInput;
                }

                var n = NrasResultVerifier.Verify(File.ReadAllText(nrasFile.FullName), File.ReadAllText(jwksFile.FullName), nonce, now);
                Console.WriteLine($"NRAS second opinion: {(n.Accepted ? "ACCEPTED" : "REJECTED")} (claims {n.ClaimsVersion ?? "?"}, overall result {n.OverallResult?.ToString() ?? "?"})");
                PrintChecks(n.Checks, Console.Out, "  ");
                foreach (var d in n.Devices)
                {
                    Console.WriteLine($"  {d.Name}: measres {d.MeasRes ?? "-"}, ueid {d.Ueid ?? "-"}, driver {d.DriverVersion ?? "-"}, VBIOS {d.VbiosVersion ?? "-"}{(d.ErrorCode is { } c ? $", error {c} {d.ErrorMessage}" : string.Empty)}");
                }

                accepted &= n.Accepted;
            }

            return accepted ? ExitCodes.Accepted : ExitCodes.Rejected;
        });
        return cmd;
    }

    private static string ExtractPayload(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("nvidia_payload", out var p) && p.ValueKind == JsonValueKind.String
            ? p.GetString()!
            : text;
    }

    private static byte[]? ParseNonce(string? hex)
    {
        if (hex is null)
        {
            return null;
        }

        if (hex.Length != SpdmLayout.NonceSize * 2 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new FormatException("--nonce must be 64 hex digits (32 bytes)");
        }

        return Convert.FromHexString(hex);
    }

    private static void PrintResult(GpuPayloadVerificationResult result, TextWriter w)
    {
        w.WriteLine($"GPU evidence: {(result.Accepted ? "ACCEPTED" : "REJECTED")}{(result.IsSimulated ? " — SIMULATED (not NVIDIA hardware)" : string.Empty)}, {result.Gpus.Count} GPU(s), verified at {result.VerifiedAt:O}");
        PrintChecks(result.Checks, w, "  ");
        foreach (var g in result.Gpus)
        {
            w.WriteLine($"  GPU {g.Index} ({g.Arch}): {(g.Accepted ? "accepted" : "REJECTED")}; driver {g.DriverVersion ?? "?"}, VBIOS {g.VbiosVersion ?? "?"}, ueid {g.Ueid ?? "?"}, hwmodel {g.HwModel ?? "?"}");
            PrintChecks(g.Checks, w, "    ");
        }
    }

    private static void PrintChecks(IEnumerable<CheckResult> checks, TextWriter w, string indent)
    {
        foreach (var c in checks)
        {
            var tag = c.Outcome switch { CheckOutcome.Passed => "ok  ", CheckOutcome.Failed => "FAIL", _ => "skip" };
            w.WriteLine($"{indent}[{tag}] {c.Name}: {c.Detail}{(c.Code is { } code ? $" ({code})" : string.Empty)}");
        }
    }

    private static void PrintCalls(IEnumerable<NvmlCall> calls, TextWriter w)
    {
        foreach (var c in calls)
        {
            w.WriteLine($"  nvml: {c}");
        }
    }

    /// <summary>The first source that knows the RIM.</summary>
    private sealed class FirstRimSource(IRimSource first, IRimSource second) : IRimSource
    {
        public byte[]? Find(string rimId) => first.Find(rimId) ?? second.Find(rimId);
    }

    /// <summary>A directory of RIM files named <c>&lt;id&gt;.xml</c> or <c>&lt;id&gt;.swidtag</c> (NVIDIA's offline layout).</summary>
    private sealed class DirectoryRimSource(string directory) : IRimSource
    {
        public byte[]? Find(string rimId)
        {
            if (rimId.IndexOfAny(['/', '\\']) >= 0 || rimId.Contains("..", StringComparison.Ordinal))
            {
                return null;
            }

            foreach (var ext in new[] { ".xml", ".swidtag" })
            {
                var path = Path.Combine(directory, rimId + ext);
                if (File.Exists(path) && new FileInfo(path).Length <= NvidiaRim.MaxRimBytes)
                {
                    return File.ReadAllBytes(path);
                }
            }

            return null;
        }
    }
}
