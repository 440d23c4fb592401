using System.CommandLine;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;

namespace PrivateMl.Cli.Commands;

/// <summary><c>privateml receipt verify FILE</c>: checks a saved receipt offline (exit 0 valid, 1 invalid, 2 input error).</summary>
internal static class ReceiptCommands
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "A receipt saved from /v1/receipt/{id} (or by privateml chat --save-receipt)" };
        var attested = new Option<string>("--attested-address") { Description = "The signing address (or Ed25519 key) attested by privateml verify; without it the receipt is only self-consistent" };
        var requestFile = new Option<FileInfo>("--request") { Description = "The exact request body sent, to compare with request_sha256" };
        var responseFile = new Option<FileInfo>("--response") { Description = "The exact response bytes received, to compare with response_sha256" };
        var verify = new Command("verify", "Verify a saved receipt offline: signatures, signed text, key binding, and (when given) attested key and bodies")
        {
            file, attested, requestFile, responseFile,
        };
        verify.SetAction(parse => Verify(
            parse.GetValue(file)!,
            parse.GetValue(attested),
            parse.GetValue(requestFile),
            parse.GetValue(responseFile),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return new Command("receipt", "Signed receipts") { verify };
    }

    internal static int Verify(FileInfo file, string? attestedAddress, FileInfo? requestFile, FileInfo? responseFile, TextWriter output, TextWriter error)
    {
        byte[] receipt;
        byte[]? request = null;
        byte[]? response = null;
        try
        {
            if (file.Exists && file.Length > ReceiptVerifier.MaxReceiptBytes)
            {
                error.WriteLine($"error: {file.FullName} is larger than a receipt can be ({ReceiptVerifier.MaxReceiptBytes} bytes)");
                return ExitCodes.UsageOrInput;
            }

            receipt = File.ReadAllBytes(file.FullName);
            request = requestFile is null ? null : File.ReadAllBytes(requestFile.FullName);
            response = responseFile is null ? null : File.ReadAllBytes(responseFile.FullName);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        var checks = ReceiptVerifier.Verify(receipt, attestedAddress, request, response);
        foreach (var c in checks)
        {
            output.WriteLine(c.Outcome switch
            {
                CheckOutcome.Passed => $"✔ {c.Name}: {c.Detail}",
                CheckOutcome.Failed => $"✘ {c.Name}: {c.Detail} [{c.Code}]",
                _ => $"– {c.Name}: {c.Detail}",
            });
        }

        var valid = checks.All(c => c.Outcome != CheckOutcome.Failed);
        output.WriteLine(valid ? "VALID receipt" : "INVALID receipt");
        return valid ? ExitCodes.Accepted : ExitCodes.Rejected;
    }
}
