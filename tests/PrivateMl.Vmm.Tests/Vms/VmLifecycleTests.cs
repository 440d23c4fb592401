using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Vms;

/// <summary>
/// Create → running → service restart → stop → start → remove with a fake qemu: the work directory holds dstack's
/// files, the process is really started and really ended, and a new manager sees the same state.
/// </summary>
public sealed class VmLifecycleTests
{
    [Fact]
    public async Task DevVm_LivesAndDies_AsTheManagerSays()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        var manager = box.Manager();
        var port = FreePort();
        var compose = VmmSandbox.Compose();
        var env = new byte[] { 1, 2, 3, 250 };

        var id = await manager.CreateAsync(new VmConfiguration
        {
            Name = "dev-vm",
            Image = "dev",
            ComposeFile = compose,
            Vcpu = 2,
            Memory = 512,
            Ports = [new PortMapping { Protocol = "tcp", HostPort = port, VmPort = 8000 }],
            EncryptedEnv = "0x" + Convert.ToHexString(env),
            UserConfig = "{\"k\":1}",
            KmsUrls = ["http://127.0.0.1:8011", "https://kms.example:8000"],
            NoTee = true,
        }, ct);
        var work = manager.WorkDir(id);
        await WaitFor(() => File.ReadAllText(work.SerialLog).Contains("fake guest ready", StringComparison.Ordinal), ct);

        // dstack's shared folder.
        Assert.Equal(Encoding.UTF8.GetBytes(compose), File.ReadAllBytes(work.SharedFile("app-compose.json")));
        Assert.Equal(env, File.ReadAllBytes(work.SharedFile(".encrypted-env")));
        Assert.Equal("{\"k\":1}", File.ReadAllText(work.SharedFile(".user-config")));
        var appId = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(compose)))[..40];
        Assert.Equal($"{{\"app_id\":\"{appId}\"}}", File.ReadAllText(work.SharedFile(".instance_info")));
        using (var sys = JsonDocument.Parse(File.ReadAllBytes(work.SharedFile(".sys-config.json"))))
        {
            Assert.Equal(["kms_urls", "gateway_urls", "pccs_url", "docker_registry", "host_api_url", "vm_config"], sys.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Equal(["http://10.0.2.2:8011", "https://kms.example:8000"], sys.RootElement.GetProperty("kms_urls").EnumerateArray().Select(e => e.GetString()));
            using var vmConfig = JsonDocument.Parse(sys.RootElement.GetProperty("vm_config").GetString()!);
            Assert.Equal(2, vmConfig.RootElement.GetProperty("cpu_count").GetInt32());
            Assert.Equal(512L * 1024 * 1024, vmConfig.RootElement.GetProperty("memory_size").GetInt64());
            Assert.Equal(new string('a', 64), vmConfig.RootElement.GetProperty("os_image_hash").GetString());
            Assert.Equal("dev", vmConfig.RootElement.GetProperty("image").GetString());
        }

        Assert.Contains($"hostfwd=tcp:127.0.0.1:{port}-:8000", File.ReadAllText(work.SerialLog), StringComparison.Ordinal);
        var info = manager.Info(work);
        Assert.Equal("running", info.Status);
        Assert.Equal(appId, info.AppId);
        var pid = VmProcess.RunningPid(work)!.Value;
        Assert.True(Directory.Exists($"/proc/{pid}"));

        // A restarted service finds the running VM, with the same process.
        manager.Dispose();
        manager = box.Manager();
        Assert.Equal("running", manager.Info(manager.WorkDir(id)).Status);
        Assert.Equal(pid, VmProcess.RunningPid(manager.WorkDir(id)));
        await Assert.ThrowsAsync<VmmException>(() => manager.StartAsync(id, ct));

        // update-env replaces the blob for the next boot.
        Assert.Equal("", await manager.UpgradeAsync(new UpgradeAppRequest { Id = id, EncryptedEnv = "0a0b" }, ct));
        Assert.Equal(new byte[] { 10, 11 }, File.ReadAllBytes(work.SharedFile(".encrypted-env")));

        await manager.StopAsync(id, force: false, ct);
        Assert.Equal("stopped", manager.Info(work).Status);
        Assert.False(Directory.Exists($"/proc/{pid}"));

        await manager.StartAsync(id, ct);
        var pid2 = VmProcess.RunningPid(work)!.Value;
        Assert.NotEqual(pid, pid2);
        Assert.Equal("running", manager.Info(work).Status);

        await manager.RemoveAsync(id, ct);
        Assert.False(Directory.Exists(work.Path));
        Assert.False(Directory.Exists($"/proc/{pid2}"));
        Assert.Empty(box.RunEntries());
        manager.Dispose();
    }

    [Fact]
    public async Task AVmWhoseQemuDied_IsReportedExited()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager();
        var id = await manager.CreateAsync(new VmConfiguration { Name = "x", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true }, ct);
        var work = manager.WorkDir(id);
        var pid = VmProcess.RunningPid(work)!.Value;

        System.Diagnostics.Process.GetProcessById(pid).Kill();
        await WaitFor(() => VmProcess.RunningPid(work) is null, ct);

        Assert.Equal("exited", manager.Info(work).Status);
        await manager.RemoveAsync(id, ct);
    }

    [Fact]
    public async Task UpgradeApp_WithANewCompose_ReturnsItsAppId_AndRefusesAMalformedOne()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager();
        var id = await manager.CreateAsync(new VmConfiguration { Name = "x", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true }, ct);
        var next = VmmSandbox.Compose("v2");

        var newAppId = await manager.UpgradeAsync(new UpgradeAppRequest { Id = id, ComposeFile = next }, ct);
        var bad = await Assert.ThrowsAsync<VmmException>(() => manager.UpgradeAsync(new UpgradeAppRequest { Id = id, ComposeFile = "{" }, ct));

        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(next)))[..40], newAppId);
        Assert.Equal(next, File.ReadAllText(manager.WorkDir(id).SharedFile("app-compose.json")));
        Assert.Equal(VmmErrorCode.InvalidCompose, bad.Code);
    }

    [Fact]
    public async Task LogsFollow_StreamsUntilTheVmStops()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var id = await vmm.Manager.CreateAsync(new VmConfiguration { Name = "f", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true }, ct);
        var work = vmm.Manager.WorkDir(id);
        await WaitFor(() => File.ReadAllText(work.SerialLog).Contains("fake guest ready", StringComparison.Ordinal), ct);
        using var http = new HttpClient();
        var client = new PrivateMl.Vmm.Client.VmmClient(http, new Uri(vmm.Url + "/"));
        var output = new StringWriter();

        var follow = client.LogsAsync(id, 0, follow: true, output, ct);
        // Keep appending until the follower shows it (it may not have read the tail yet when the first line lands).
        await WaitFor(() =>
        {
            File.AppendAllText(work.SerialLog, "late line\n");
            return output.ToString().Contains("late line", StringComparison.Ordinal);
        }, ct);
        await vmm.Manager.StopAsync(id, force: true, ct);
        await follow.WaitAsync(TimeSpan.FromSeconds(30), ct);

        Assert.DoesNotContain("fake guest ready", output.ToString(), StringComparison.Ordinal);
        Assert.All(output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), line => Assert.Equal("late line", line));
        Assert.True(follow.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Resize_ChangesAStoppedVm_AndRefusesShrinkingTheDiskOrARunningVm()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager();
        var id = await manager.CreateAsync(new VmConfiguration { Name = "r", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true, DiskSize = 10 }, ct);

        await manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 3, Memory = 3072, DiskSize = 12 }, ct);
        var shrink = await Assert.ThrowsAsync<VmmException>(() => manager.ResizeAsync(new ResizeVmRequest { Id = id, DiskSize = 5 }, ct));
        await manager.StartAsync(id, ct);
        var running = await Assert.ThrowsAsync<VmmException>(() => manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 1 }, ct));

        var m = manager.WorkDir(id).ReadManifest();
        Assert.Equal((3, 3072, 12), (m.Vcpu, m.Memory, m.DiskSize));
        Assert.Equal(VmmErrorCode.InvalidArgument, shrink.Code);
        Assert.Equal(VmmErrorCode.InvalidState, running.Code);
        Assert.Contains("-smp 3", string.Join(' ', manager.CommandLine(manager.WorkDir(id))), StringComparison.Ordinal);
        await manager.RemoveAsync(id, ct);
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    internal static async Task WaitFor(Func<bool> condition, CancellationToken ct)
    {
        for (var k = 0; k < 400; k++)
        {
            try
            {
                if (condition())
                {
                    return;
                }
            }
            catch (IOException)
            {
                // Not written yet.
            }

            await Task.Delay(50, ct);
        }

        Assert.Fail("condition not reached within 20 s");
    }
}
