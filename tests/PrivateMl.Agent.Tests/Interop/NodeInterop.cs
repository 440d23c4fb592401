using System.Diagnostics;
using PrivateMl.Testing;

namespace PrivateMl.Agent.Tests.Interop;

/// <summary>
/// Runs a script of tests/interop with node. Skips (or fails under PRIVATEML_REQUIRE_SHARED=1) when node or the
/// npm packages are missing.
/// </summary>
internal static class NodeInterop
{
    public static string Directory { get; } = Path.Combine(SharedTestData.RepositoryRoot, "tests", "interop");

    public static void RequireNodeModules()
    {
        var sdk = Path.Combine(Directory, "node_modules", "@phala", "dstack-sdk", "package.json");
        if (File.Exists(sdk))
        {
            return;
        }

        SkipOrFail($"{Path.Combine(Directory, "node_modules")} lacks @phala/dstack-sdk; run 'npm install' in tests/interop");
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string script, IReadOnlyDictionary<string, string?> environment)
    {
        var start = new ProcessStartInfo("node", [script])
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            SkipOrFail($"node is not installed: {e.Message}");
            throw;
        }

        using (process)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(TimeSpan.FromMinutes(2));
            var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            return (process.ExitCode, await stdout, await stderr);
        }
    }

    private static void SkipOrFail(string reason)
    {
        if (Environment.GetEnvironmentVariable(SharedTestData.RequireVariable) == "1")
        {
            Assert.Fail(reason + $" ({SharedTestData.RequireVariable}=1 requires the interop test to run)");
        }

        Assert.Skip(reason);
    }
}
