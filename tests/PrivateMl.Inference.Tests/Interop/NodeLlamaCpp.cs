using System.Diagnostics;
using System.Text.Json;
using PrivateMl.Testing;

namespace PrivateMl.Inference.Tests.Interop;

/// <summary>
/// Runs tests/interop/llama/greedy.mjs under node (node-llama-cpp, pinned in its package.json). Skips when node or
/// the script's node_modules are missing; fails instead when PRIVATEML_REQUIRE_SHARED=1 (CI installs them).
/// </summary>
internal static class NodeLlamaCpp
{
    public static string ScriptDirectory => Path.Combine(SharedTestData.RepositoryRoot, "tests", "interop", "llama");

    public sealed record Result(int[] Prompt, int[] Tokens, string Text, double[]? TokensPerSecond);

    public static async Task<Result> RunAsync(string modelPath, string prompt, int tokens, int threads, CancellationToken cancellationToken)
    {
        var package = Path.Combine(ScriptDirectory, "node_modules", "node-llama-cpp", "package.json");
        if (!File.Exists(package))
        {
            var reason = $"node-llama-cpp is not installed (run `npm ci` in {ScriptDirectory}); interop test skipped";
            if (Environment.GetEnvironmentVariable(SharedTestData.RequireVariable) == "1")
            {
                Assert.Fail(reason + $", but {SharedTestData.RequireVariable}=1 requires it");
            }

            Assert.Skip(reason);
        }

        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = ScriptDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "greedy.mjs", "--model", modelPath, "--prompt", prompt, "--tokens", tokens.ToString(), "--threads", threads.ToString() })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        Assert.True(process.ExitCode == 0, $"node exited with {process.ExitCode}: {await stderr}");
        var json = JsonDocument.Parse((await stdout).Trim().Split('\n')[^1]).RootElement;
        return new Result(
            json.GetProperty("prompt").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            json.GetProperty("text").GetString()!,
            json.TryGetProperty("tokensPerSecond", out var tps) ? tps.EnumerateArray().Select(e => e.GetDouble()).ToArray() : null);
    }
}
