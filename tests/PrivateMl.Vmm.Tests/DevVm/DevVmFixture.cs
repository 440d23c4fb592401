using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Env;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevVm;

/// <summary>
/// The host side of a development-VM test, shared by the tests of a class: the image (built, or reused from the
/// cache), a running <c>privateml vmm serve</c> (the self-contained privateml that also went into the image, so host
/// and guest run the same build), and a stand-in KMS that serves a validly signed env-encryption public key (the
/// only KMS call the host makes for deploy --env-file and update-env). Every CLI call gets a private HOME (no
/// ~/.dstack-vmm whitelist). On dispose every qemu under the run path is killed by its pid file, then the service.
/// </summary>
public sealed class DevVmFixture : IAsyncDisposable
{
    public const string ImageName = "dev";

    /// <summary>Generous: TCG is slow, and the machine is shared.</summary>
    public static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(8);

    private static readonly TimeSpan CliTimeout = TimeSpan.FromMinutes(3);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Process? _service;
    private WebApplication? _kms;

    public string WorkDirectory { get; } = Path.Combine(Path.GetTempPath(), "privateml-devvm-" + Guid.NewGuid().ToString("N")[..8]);

    public string RunPath => Path.Combine(WorkDirectory, "vm");

    public DevImageResult? Image { get; private set; }

    /// <summary>The self-contained privateml that went into the image (it runs on the host, too).</summary>
    public string HostCli => Path.Combine(Image!.PublishDirectory, "privateml");

    public string VmmUrl { get; private set; } = "";

    public string KmsUrl { get; private set; } = "";

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

            if (_kms is not null)
            {
                await _kms.DisposeAsync();
            }
        }
        finally
        {
            _service?.Dispose();
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

    private Process Start(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["HOME"] = Home;
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// A stand-in for the KMS's unauthenticated <c>GetAppEnvEncryptPubKey</c>: an env key pair and a root k256 key made
    /// here, the public key signed both ways as a KMS signs it (research/dstack.md §7.1).
    /// </summary>
    private async Task<string> StartKmsAsync(CancellationToken cancellationToken)
    {
        var root = RandomNumberGenerator.GetBytes(32);
        var envKey = RandomNumberGenerator.GetBytes(32);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapPost("/prpc/GetAppEnvEncryptPubKey", async context =>
        {
            using var request = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            var appId = Convert.FromHexString(request.RootElement.GetProperty("app_id").GetString()!);
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(AppEnvEncryptPublicKey.Create(root, appId, envKey, DateTimeOffset.UtcNow).ToJson(), context.RequestAborted);
        });
        await app.StartAsync(cancellationToken);
        _kms = app;
        return app.Urls.First().TrimEnd('/');
    }
}
