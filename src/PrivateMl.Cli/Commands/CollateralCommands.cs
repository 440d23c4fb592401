using System.CommandLine;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral;

namespace PrivateMl.Cli.Commands;

internal static class CollateralCommands
{
    public static Command Create()
    {
        var command = new Command("collateral", "Fetch and bundle DCAP collateral");
        command.Subcommands.Add(CreateFetch());
        return command;
    }

    private static Command CreateFetch()
    {
        var quoteArgument = new Argument<FileInfo>("FILE") { Description = "The quote: raw binary, hex or base64 (detected)" };
        var pccsOption = new Option<Uri>("--pccs")
        {
            Description = "PCCS or Intel PCS base URL, e.g. https://api.trustedservices.intel.com",
            Required = true,
            CustomParser = result =>
            {
                var text = result.Tokens.Single().Value;
                if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp))
                {
                    return uri;
                }

                result.AddError($"--pccs must be an absolute http(s) URL, got '{text}'");
                return null;
            },
        };
        var outputOption = new Option<FileInfo>("--output", "-o") { Description = "Where to write the collateral (dcap-qvl JSON)", Required = true };
        var cacheOption = new Option<DirectoryInfo?>("--cache") { Description = "Cache directory: reuse collateral there until its earliest nextUpdate" };
        var timeoutOption = new Option<int>("--timeout") { Description = "Seconds per HTTP request", DefaultValueFactory = _ => 30 };

        var fetch = new Command(
            "fetch",
            "Fetch the collateral a quote needs (FMSPC and CA type from its PCK certificate) from a PCCS or Intel PCS (v4 API). " +
            "Exit codes: 0 fetched, 1 the collateral could not be obtained (network, HTTP status, malformed answer), 2 usage or input error.")
        {
            quoteArgument,
            pccsOption,
            outputOption,
            cacheOption,
            timeoutOption,
        };
        fetch.SetAction(async (parseResult, cancellationToken) =>
        {
            var quoteFile = parseResult.GetRequiredValue(quoteArgument);
            var output = parseResult.GetRequiredValue(outputOption);
            var timeout = parseResult.GetValue(timeoutOption);
            if (timeout <= 0)
            {
                await Console.Error.WriteLineAsync("--timeout must be a positive number of seconds");
                return ExitCodes.UsageOrInput;
            }

            CollateralRequest request;
            try
            {
                request = QuotePlatform.CollateralRequestFor(TdxQuote.Parse(QuoteInput.Decode(ReadBounded(quoteFile))));
            }
            catch (AttestationException ex)
            {
                await Console.Error.WriteLineAsync($"✘ {quoteFile.Name}: {ex.Message} [{ex.Code}]");
                return ExitCodes.UsageOrInput;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"✘ cannot read {quoteFile.FullName}: {ex.Message}");
                return ExitCodes.UsageOrInput;
            }

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(timeout) };
            ICollateralSource source = new RetryingCollateralSource(new PccsCollateralSource(http, parseResult.GetRequiredValue(pccsOption)), TimeProvider.System);
            if (parseResult.GetValue(cacheOption) is { } cache)
            {
                source = new CachingCollateralSource(source, cache.FullName, TimeProvider.System);
            }

            try
            {
                var collateral = await source.GetCollateralAsync(request, cancellationToken);
                await File.WriteAllTextAsync(output.FullName, CollateralJson.Serialize(collateral), cancellationToken);
                Console.WriteLine($"✔ collateral for {request} written to {output.FullName}");
                return ExitCodes.Accepted;
            }
            catch (AttestationException ex)
            {
                await Console.Error.WriteLineAsync($"✘ collateral for {request}: {ex.Message} [{ex.Code}]");
                return ExitCodes.Rejected;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"✘ cannot write {output.FullName}: {ex.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return fetch;
    }

    private static byte[] ReadBounded(FileInfo file)
    {
        if (file.Exists && file.Length > QuoteLimits.MaxEncodedInputSize)
        {
            throw new AttestationException(ErrorCode.QuoteTooLarge, $"the file is {file.Length} bytes; a quote file has at most {QuoteLimits.MaxEncodedInputSize}");
        }

        return File.ReadAllBytes(file.FullName);
    }
}
