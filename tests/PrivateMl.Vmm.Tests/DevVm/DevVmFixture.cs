using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using PrivateMl.Agent.Keys;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevVm;

/// <summary>
/// The host side of a development-VM test, shared by the tests of a class: the image (built, or reused from the
/// cache), a running <c>privateml vmm serve</c> (the self-contained privateml that also went into the image, so host
/// and guest run the same build), and a real <c>privateml kms serve --simulate</c> trusting the image's SIMULATED
/// platform, whose k256 root is the only trusted env signer. Every CLI call gets a private HOME. On dispose every qemu
/// under the run path is killed by its pid file, then the service and the KMS.
/// </summary>
public sealed class DevVmFixture : IAsyncDisposable
{
    public const string ImageName = "dev";

    /// <summary>Generous: TCG is slow, and the machine is shared.</summary>
    public static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(8);

    private static readonly TimeSpan CliTimeout = TimeSpan.FromMinutes(3);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Process? _service;
    private Process? _kmsProcess;

    public string WorkDirectory { get; } = Path.Combine(Path.GetTempPath(), "privateml-devvm-" + Guid.NewGuid().ToString("N")[..8]);

    public string RunPath => Path.Combine(WorkDirectory, "vm");

    public DevImageResult? Image { get; private set; }

    /// <summary>The self-contained privateml that went into the image (it runs on the host, too).</summary>
    public string HostCli => Path.Combine(Image!.PublishDirectory, "privateml");

    public string VmmUrl { get; private set; } = "";

    /// <summary>The host KMS as the host reaches it (the VMM rewrites it to 10.0.2.2 for the guest).</summary>
    public string KmsUrl { get; private set; } = "";

    /// <summary>The host KMS's output (its refusals name their reason).</summary>
    public string KmsLogPath { get; private set; } = "";

    public async Task EnsureStartedAsync(CancellationToken cancellationToken)
    {
        DevVmEnvironment.RequireTools();
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_service is not null)
            {
                return;
            }

            Directory.CreateDirectory(Path.Combine(WorkDirectory, "home"));
            Image = await Task.Run(() => DevVmEnvironment.BuildImage(Path.Combine(WorkDirectory, "images", ImageName)), cancellationToken);
            KmsUrl = await StartKmsAsync(cancellationToken);

            var port = DevVmEnvironment.FreePort();
            VmmUrl = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{port}");
            var config = Path.Combine(WorkDirectory, "vmm.json");
            await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new Dictionary<string, string>
            {
                ["address"] = VmmUrl,
                ["image_path"] = Path.Combine(WorkDirectory, "images"),
                ["run_path"] = RunPath,
            }), cancellationToken);
            _service = Start(HostCli, ["vmm", "serve", "--config", config]);
            await WaitForAsync(new Uri(VmmUrl + "/prpc/Version?json"), TimeSpan.FromMinutes(2), () => _service.HasExited ? "the vmm service exited" : null, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Runs the host CLI (bounded) with the fixture's HOME; returns its exit code and output.</summary>
    public Task<(int ExitCode, string Output)> CliAsync(IEnumerable<string> arguments, CancellationToken cancellationToken) =>
        DevVmEnvironment.RunAsync(HostCli, arguments, CliTimeout, cancellationToken, Home);

    /// <summary>Runs a <c>privateml vmm</c> verb against the fixture's service and requires it to succeed.</summary>
    public async Task<string> VmmAsync(CancellationToken cancellationToken, params string[] arguments)
    {
        var (exit, output) = await CliAsync(["vmm", arguments[0], "--url", VmmUrl, .. arguments[1..]], cancellationToken);
        Assert.True(exit == 0, $"privateml vmm {string.Join(' ', arguments)} exited {exit}:\n{output}");
        return output;
    }

    /// <summary>Waits until <paramref name="url"/> answers 2xx; fails with <paramref name="whyNot"/>'s answer (or a timeout) and the console.</summary>
    public static async Task WaitForAsync(Uri url, TimeSpan timeout, Func<string?> whyNot, CancellationToken cancellationToken, Func<string>? console = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (whyNot() is { } reason)
            {
                Assert.Fail($"{reason} before {url} answered\n{console?.Invoke()}");
            }

            try
            {
                using var response = await http.GetAsync(url, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }

            await Task.Delay(1000, cancellationToken);
        }

        Assert.Fail($"{url} did not answer within {timeout}\n{console?.Invoke()}");
    }

    /// <summary>The pid in a VM's qemu.pid, when that process is alive.</summary>
    public static int? LivePid(string workDir)
    {
        var file = Path.Combine(workDir, "qemu.pid");
        if (!File.Exists(file) || !int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
        {
            return null;
        }

        var stat = $"/proc/{pid}/stat";
        if (!File.Exists(stat))
        {
            return null;
        }

        // A zombie (state Z) has exited; only its parent has yet to reap it.
        var text = File.ReadAllText(stat);
        var state = text[(text.LastIndexOf(')') + 2)..].Split(' ')[0];
        return state == "Z" ? null : pid;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Directory.Exists(RunPath))
            {
                foreach (var vm in Directory.EnumerateDirectories(RunPath))
                {
                    if (LivePid(vm) is { } pid)
                    {
                        try
                        {
                            using var qemu = Process.GetProcessById(pid);
                            qemu.Kill();
                            await qemu.WaitForExitAsync();
                        }
                        catch (ArgumentException)
                        {
                        }
                    }
                }
            }

            if (_service is { HasExited: false } service)
            {
                service.Kill(entireProcessTree: true);
                await service.WaitForExitAsync();
            }

            if (_kmsProcess is { HasExited: false } kms)
            {
                kms.Kill(entireProcessTree: true);
                await kms.WaitForExitAsync();
            }
        }
        finally
        {
            _service?.Dispose();
            _kmsProcess?.Dispose();
            _gate.Dispose();
            try
            {
                Directory.Delete(WorkDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private string Home => Path.Combine(WorkDirectory, "home");

    private Process Start(string file, IEnumerable<string> arguments, string? logPath = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["HOME"] = Home;
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        var log = logPath is null ? null : TextWriter.Synchronized(new StreamWriter(logPath) { AutoFlush = true });
        process.OutputDataReceived += (_, e) => log?.WriteLine(e.Data);
        process.ErrorDataReceived += (_, e) => log?.WriteLine(e.Data);
        process.Exited += (_, _) => log?.Dispose();
        process.EnableRaisingEvents = log is not null;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// The host KMS, as an operator runs it for the development VM: <c>privateml kms serve --simulate</c> trusting the
    /// image's SIMULATED platform (<c>&lt;image&gt;/tdx-simulator</c>, the one the guest makes its quotes with), on the
    /// host's loopback (the guest reaches it as 10.0.2.2 through QEMU user-net). Its k256 root, read from GetMeta, goes
    /// into the vmm-cli trust list of the fixture's HOME with <c>privateml kms add</c>, so deploy/update-env accept
    /// only env keys this KMS signed.
    /// </summary>
    private async Task<string> StartKmsAsync(CancellationToken cancellationToken)
    {
        var port = DevVmEnvironment.FreePort();
        var url = string.Create(CultureInfo.InvariantCulture, $"https://127.0.0.1:{port}");
        KmsLogPath = Path.Combine(WorkDirectory, "kms.log");
        _kmsProcess = Start(
            HostCli,
            ["kms", "serve", "--simulate", "--simulator", Path.Combine(Image!.ImageDirectory, DevImageBuilder.SimulatorDirectoryName),
             "--state", Path.Combine(WorkDirectory, "kms"), "--listen", url],
            KmsLogPath);
        var clock = Stopwatch.StartNew();
        byte[]? k256 = null;
        while (k256 is null)
        {
            if (_kmsProcess.HasExited || clock.Elapsed > TimeSpan.FromMinutes(2))
            {
                Assert.Fail($"privateml kms serve did not answer GetMeta\n{File.ReadAllText(KmsLogPath)}");
            }

            try
            {
                using var client = new KmsClient(new Uri(url));
                using var meta = await client.CallAsync("GetMeta", null, cancellationToken);
                Assert.True(meta.RootElement.GetProperty("is_dev").GetBoolean(), "a --simulate KMS says is_dev");
                k256 = Convert.FromHexString(meta.RootElement.GetProperty("k256_pubkey").GetString()!);
            }
            catch (KmsClientException)
            {
                await Task.Delay(1000, cancellationToken);
            }
        }

        var whitelist = Path.Combine(Home, ".dstack-vmm", "kms-whitelist.json");
        var (exit, output) = await CliAsync(["kms", "add", Convert.ToHexStringLower(k256), "--trust-file", whitelist], cancellationToken);
        Assert.True(exit == 0, $"privateml kms add exited {exit}:\n{output}");
        return url;
    }
}
