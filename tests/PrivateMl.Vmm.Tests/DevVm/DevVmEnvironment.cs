using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using PrivateMl.Testing;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevVm;

/// <summary>
/// What a development-VM test needs on the machine: qemu-system-x86_64, a static busybox, apt-get/apt-cache/dpkg (the
/// kernel package) and the .NET SDK (publishing privateml). Absent tools skip the test with that reason, unless
/// PRIVATEML_REQUIRE_SHARED=1 (CI), where they fail it.
/// </summary>
internal static class DevVmEnvironment
{
    public static readonly string[] RequiredCommands = ["qemu-system-x86_64", "apt-get", "apt-cache", "dpkg", "dotnet"];

    public static void RequireTools()
    {
        var missing = RequiredCommands.Where(c => Which(c) is null).ToList();
        if (!File.Exists("/bin/busybox"))
        {
            missing.Add("/bin/busybox (busybox-static)");
        }

        if (missing.Count == 0)
        {
            return;
        }

        var reason = $"the development VM needs {string.Join(", ", missing)} (apt-get install qemu-system-x86 busybox-static)";
        if (Environment.GetEnvironmentVariable(SharedTestData.RequireVariable) == "1")
        {
            Assert.Fail(reason + $", and {SharedTestData.RequireVariable}=1 requires it");
        }

        Assert.Skip(reason);
    }

    public static string? Which(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, command)).FirstOrDefault(File.Exists);

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Runs a command to completion (bounded), returning its exit code and combined output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken, string? home = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (home is not null)
        {
            start.Environment["HOME"] = home;
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', start.ArgumentList)} did not finish within {timeout}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>The image every dev-VM test boots: built (or reused from the cache) once per test run.</summary>
    public static DevImageResult BuildImage(string outputDirectory) => DevImageBuilder.Build(new DevImageOptions
    {
        OutputDirectory = outputDirectory,
        SourceDirectory = SharedTestData.RepositoryRoot,
    });
}
