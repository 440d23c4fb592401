using System.CommandLine;
using System.Security.Cryptography;
using PrivateMl.Inference.Models;

namespace PrivateMl.Cli.Commands;

/// <summary><c>privateml model make-demo PATH [--seed N]</c>: writes the tiny random-weight demo GGUF.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var command = new Command("model", "Models for the embedded engine (GGUF)");
        command.Subcommands.Add(CreateMakeDemo());
        return command;
    }

    private static Command CreateMakeDemo()
    {
        var path = new Argument<FileInfo>("PATH") { Description = "Where to write the .gguf file (replaced if present)" };
        var seed = new Option<ulong>("--seed") { Description = "SplitMix64 seed of the weights (same seed, same bytes)", DefaultValueFactory = _ => 42 };
        var command = new Command(
            "make-demo",
            "Write the demo model: a tiny llama GGUF with seeded random weights. It loads in llama.cpp but produces meaningless text.")
        {
            path,
            seed,
        };
        command.SetAction(parseResult =>
        {
            var file = parseResult.GetValue(path)!;
            var bytes = DemoModelWriter.Create(new DemoModelOptions { Seed = parseResult.GetValue(seed) });
            try
            {
                file.Directory?.Create();
                File.WriteAllBytes(file.FullName, bytes);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"cannot write {file.FullName}: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            Console.WriteLine($"wrote {file.FullName} ({bytes.Length} bytes, sha256 {Convert.ToHexStringLower(SHA256.HashData(bytes))})");
            Console.WriteLine("note: random weights, never trained; this model produces meaningless text. Serve a real GGUF with --model.");
            return ExitCodes.Accepted;
        });
        return command;
    }
}
