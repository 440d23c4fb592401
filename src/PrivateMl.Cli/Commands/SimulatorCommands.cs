using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using PrivateMl.Agent.Hosting;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml simulator init|quote|collateral|root|pccs</c>: the software TDX. Everything it produces is signed by the
/// SIMULATED root and verifies only where that root is trusted explicitly.
/// </summary>
internal static class SimulatorCommands
{
    private const string DefaultStateDirectory = ".privateml-simulator";

    public static Command Create()
    {
        var command = new Command("simulator", "The software TDX simulator (state, quotes, collateral, PCCS routes) — SIMULATED evidence only");
        command.Subcommands.Add(CreateInit());
        command.Subcommands.Add(CreateQuote());
        command.Subcommands.Add(CreateCollateral());
        command.Subcommands.Add(CreateRoot());
        command.Subcommands.Add(CreatePccs());
        return command;
    }

    private static Option<string> StateOption() => new("--state")
    {
        Description = "Simulator state directory (keys, certificates, profile, RTMR state; files 0600)",
        DefaultValueFactory = _ => DefaultStateDirectory,
    };

    private static Option<FileInfo?> OutOption(string description) => new("--out", "-o") { Description = description };

    private static Command CreateInit()
    {
        var state = StateOption();
        var profile = new Option<FileInfo?>("--profile") { Description = "TD profile JSON (mr_td, rtmr0..2, td_attributes, xfam, mr_seam, tee_tcb_svn, …)" };
        var force = new Option<bool>("--force") { Description = "Replace an existing simulator state" };
        var command = new Command("init", "Create a simulated platform: SIMULATED root CA, PCK chain, QE attestation key, TD profile")
        {
            state, profile, force,
        };
        command.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            var directory = parseResult.GetValue(state)!;
            if (SimulatedTdxPlatform.Exists(directory) && !parseResult.GetValue(force))
            {
                error.WriteLine($"error: {directory} already holds a simulator; pass --force to replace it");
                return ExitCodes.UsageOrInput;
            }

            TdProfile tdProfile;
            try
            {
                tdProfile = parseResult.GetValue(profile) is { } file ? TdProfile.FromJson(File.ReadAllText(file.FullName)) : new TdProfile();
            }
            catch (Exception ex) when (ex is FormatException or IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"error: cannot read the TD profile: {ex.Message}");
                return ExitCodes.UsageOrInput;
            }

            using var platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions { Profile = tdProfile }, TimeProvider.System.GetUtcNow());
            platform.Save(directory);
            output.WriteLine($"SIMULATED TDX platform created in {Path.GetFullPath(directory)}");
            output.WriteLine($"  root:  {platform.Pki.RootCertificate.Subject}");
            output.WriteLine($"  root SHA-256: {Convert.ToHexStringLower(SHA256.HashData(platform.Pki.RootCertificate.RawData))}");
            output.WriteLine($"  FMSPC: {Convert.ToHexStringLower(platform.Pki.Platform.Fmspc.Span)}");
            output.WriteLine("  Evidence from this simulator verifies only when the SIMULATED root is trusted explicitly.");
            return ExitCodes.Accepted;
        });
        return command;
    }

    private static Command CreateQuote()
    {
        var state = StateOption();
        var reportData = new Option<string>("--report-data", "-d") { Description = "Report data as hex (at most 64 bytes; zero-padded on the right)", Required = true };
        var output = OutOption("Write the binary quote here (default: hex on standard output)");
        var command = new Command("quote", "Produce a SIMULATED TDX v4 quote over the given report data") { state, reportData, output };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            if (!TryParseReportData(parseResult.GetValue(reportData)!, out var data, out var problem))
            {
                error.WriteLine($"error: --report-data {problem}");
                return ExitCodes.UsageOrInput;
            }

            if (!TryOpen(parseResult.GetValue(state)!, error, out var device))
            {
                return ExitCodes.UsageOrInput;
            }

            using (device)
            {
                var quote = await device.GetQuoteAsync(data, cancellationToken);
                if (parseResult.GetValue(output) is { } file)
                {
                    await File.WriteAllBytesAsync(file.FullName, quote, cancellationToken);
                    parseResult.InvocationConfiguration.Output.WriteLine($"SIMULATED quote ({quote.Length} bytes) written to {file.FullName}");
                }
                else
                {
                    parseResult.InvocationConfiguration.Output.WriteLine(Convert.ToHexStringLower(quote));
                    error.WriteLine($"note: SIMULATED quote ({quote.Length} bytes), signed under {device.Platform.Pki.RootCertificate.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.SimpleName, false)}");
                }
            }

            return ExitCodes.Accepted;
        });
        return command;
    }

    private static Command CreateCollateral()
    {
        var state = StateOption();
        var output = OutOption("Write the collateral JSON here (default: standard output)");
        var command = new Command("collateral", "Produce SIMULATED collateral (dcap-qvl JSON: TCB info, QE identity, CRLs, chains)") { state, output };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            if (!TryOpen(parseResult.GetValue(state)!, parseResult.InvocationConfiguration.Error, out var device))
            {
                return ExitCodes.UsageOrInput;
            }

            using (device)
            {
                var json = JsonSerializer.Serialize(device.CreateCollateral(), SimulatorCliJson.Default.DcapCollateral);
                await WriteTextAsync(parseResult, parseResult.GetValue(output), json, "SIMULATED collateral", cancellationToken);
            }

            return ExitCodes.Accepted;
        });
        return command;
    }

    private static Command CreateRoot()
    {
        var state = StateOption();
        var output = OutOption("Write the PEM here (default: standard output)");
        var command = new Command("root", "Print the SIMULATED root CA certificate (PEM), to trust it explicitly when verifying") { state, output };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            if (!TryOpen(parseResult.GetValue(state)!, parseResult.InvocationConfiguration.Error, out var device))
            {
                return ExitCodes.UsageOrInput;
            }

            using (device)
            {
                var pem = SimulatedPki.ToPem(device.Platform.Pki.RootCertificate);
                await WriteTextAsync(parseResult, parseResult.GetValue(output), pem, "SIMULATED root CA", cancellationToken);
            }

            return ExitCodes.Accepted;
        });
        return command;
    }

    private static Command CreatePccs()
    {
        var state = StateOption();
        var listen = new Option<string>("--listen") { Description = "URL to listen on", DefaultValueFactory = _ => "http://127.0.0.1:8081" };
        var command = new Command("pccs", "Serve SIMULATED collateral over PCCS / Intel PCS v4 routes until stopped") { state, listen };
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            var error = parseResult.InvocationConfiguration.Error;
            var url = parseResult.GetValue(listen)!;
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                error.WriteLine($"error: --listen must be an http(s) URL, got '{url}'");
                return ExitCodes.UsageOrInput;
            }

            if (!TryOpen(parseResult.GetValue(state)!, error, out var device))
            {
                return ExitCodes.UsageOrInput;
            }

            using (device)
            {
                var builder = ServiceHost.CreateBuilder(null);
                builder.WebHost.UseUrls(url);
                await using var app = builder.Build();
                app.MapSimulatedPccs(device.Platform, TimeProvider.System);
                await app.StartAsync(cancellationToken);
                parseResult.InvocationConfiguration.Output.WriteLine($"SIMULATED PCCS listening on {string.Join(", ", app.Urls)}");
                await UntilStopped.WaitAsync(cancellationToken);

                await app.StopAsync(CancellationToken.None);
            }

            return ExitCodes.Accepted;
        });
        return command;
    }

    internal static bool TryParseReportData(string hex, out byte[] reportData, out string problem)
    {
        reportData = new byte[64];
        problem = "";
        var text = hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? hex[2..] : hex;
        if (text.Length > 128)
        {
            problem = $"is {text.Length / 2} bytes; at most 64 are allowed";
            return false;
        }

        if (text.Length % 2 != 0 || !text.All(Uri.IsHexDigit))
        {
            problem = "is not an even number of hex digits";
            return false;
        }

        Convert.FromHexString(text).CopyTo(reportData, 0);
        return true;
    }

    private static bool TryOpen(string directory, TextWriter error, out SimulatedTdxDevice device)
    {
        device = null!;
        if (!SimulatedTdxPlatform.Exists(directory))
        {
            error.WriteLine($"error: no simulator state in {directory}; run 'privateml simulator init --state {directory}' first");
            return false;
        }

        try
        {
            device = SimulatedTdxDevice.OpenOrCreate(directory, TimeProvider.System);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FormatException or CryptographicException
            or KeyNotFoundException or JsonException or ArgumentException or InvalidOperationException)
        {
            error.WriteLine($"error: simulator state in {directory} is unreadable: {ex.Message}");
            return false;
        }
    }

    private static async Task WriteTextAsync(ParseResult parseResult, FileInfo? file, string text, string what, CancellationToken cancellationToken)
    {
        if (file is null)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(text);
            parseResult.InvocationConfiguration.Error.WriteLine($"note: {what} printed above");
            return;
        }

        await File.WriteAllTextAsync(file.FullName, text, cancellationToken);
        parseResult.InvocationConfiguration.Output.WriteLine($"{what} written to {file.FullName}");
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(PrivateMl.Attestation.Tdx.Collateral.DcapCollateral))]
internal sealed partial class SimulatorCliJson : System.Text.Json.Serialization.JsonSerializerContext;
