using System.Diagnostics;
using System.Globalization;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevVm;

/// <summary>
/// One booted development VM shared by the tests of a class: the image is built (or reused from the cache), the app
/// compose written into a shared folder, QEMU started with the documented no-TEE command line and a host port
/// forwarded to the guest gateway, and the gateway's /health awaited with a generous bound (a TCG boot plus .NET
/// start on two loaded cores). QEMU is killed on dispose, whatever happened.
/// </summary>
public sealed class DevVmFixture : IAsyncDisposable
{
    /// <summary>Generous: TCG is slow, and the machine is shared.</summary>
    public static readonly TimeSpan BootTimeout = TimeSpan.FromMinutes(8);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Process? _qemu;

    public string WorkDirectory { get; } = Path.Combine(Path.GetTempPath(), "privateml-devvm-" + Guid.NewGuid().ToString("N")[..8]);

    public DevImageResult? Image { get; private set; }

    public string SharedDirectory => Path.Combine(WorkDirectory, "shared");

    public string SerialLog => Path.Combine(WorkDirectory, "serial.log");

    public string ComposePath => Path.Combine(SharedDirectory, GuestSharedFolder.AppComposeFile);

    public int HostPort { get; private set; }

    public Uri BaseUrl => new($"http://127.0.0.1:{HostPort}");

    /// <summary>From starting QEMU to the first answer through the forwarded port.</summary>
    public TimeSpan BootToAnswer { get; private set; }

    /// <summary>The self-contained privateml that went into the image (it runs on the host, too).</summary>
    public string HostCli => Path.Combine(Image!.PublishDirectory, "privateml");

    public Process? Qemu => _qemu;

    public async Task EnsureBootedAsync(CancellationToken cancellationToken)
    {
        DevVmEnvironment.RequireTools();
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_qemu is not null)
            {
                return;
            }

            Directory.CreateDirectory(SharedDirectory);
            Image = await Task.Run(() => DevVmEnvironment.BuildImage(Path.Combine(WorkDirectory, "image")), cancellationToken);
            await File.WriteAllBytesAsync(ComposePath, DevVmEnvironment.Compose("devvm-test", []), cancellationToken);
            HostPort = DevVmEnvironment.FreePort();
            var started = Stopwatch.StartNew();
            _qemu = StartQemu(Image.ImageDirectory, SharedDirectory, SerialLog, HostPort);
            await WaitForHealthAsync(cancellationToken);
            BootToAnswer = started.Elapsed;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Kills QEMU (if running) and waits for it to be gone.</summary>
    public async Task StopAsync()
    {
        if (_qemu is { HasExited: false } qemu)
        {
            qemu.Kill(entireProcessTree: true);
            await qemu.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            _qemu?.Dispose();
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

    /// <summary>research/dev-vm.md's invocation (the no-TEE form of vmm's command line), serial console to a file.</summary>
    internal static Process StartQemu(string image, string shared, string serialLog, int hostPort)
    {
        var cmdline = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(image, DevImageBuilder.MetadataFile))).RootElement.GetProperty("cmdline").GetString()!;
        var start = new ProcessStartInfo("qemu-system-x86_64")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048", "-nographic", "-nodefaults", "-no-reboot",
            "-chardev", $"file,id=com0,path={serialLog}", "-serial", "chardev:com0", "-monitor", "none",
            "-kernel", Path.Combine(image, DevImageBuilder.KernelFile), "-initrd", Path.Combine(image, DevImageBuilder.InitrdFile),
            "-append", cmdline,
            "-netdev", string.Create(CultureInfo.InvariantCulture, $"user,id=net0,hostfwd=tcp:127.0.0.1:{hostPort}-:{DevGuestInit.GuestPort}"),
            "-device", "virtio-net-pci,netdev=net0",
            "-virtfs", $"local,path={shared},mount_tag={DevGuestInit.SharedFolderTag},security_model=none,readonly=on,id=virtfs0",
        })
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

    private async Task WaitForHealthAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < BootTimeout)
        {
            if (_qemu!.HasExited)
            {
                Assert.Fail($"qemu exited with {_qemu.ExitCode} before the guest answered; console:\n{ConsoleTail()}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri(BaseUrl, "/health"), cancellationToken);
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

        Assert.Fail($"the guest did not answer on {BaseUrl} within {BootTimeout}; console:\n{ConsoleTail()}");
    }

    public string ConsoleTail()
    {
        try
        {
            var text = File.ReadAllText(SerialLog);
            return text.Length > 4000 ? text[^4000..] : text;
        }
        catch (IOException)
        {
            return "(no console log)";
        }
    }
}
