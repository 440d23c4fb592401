using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Tests.Vms;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Cli;

/// <summary>The operator verbs beyond deploy: --token, graceful stop, info, resize, update-ports, update, deploy --swap, update-env's allowed_envs.</summary>
public sealed class VmmOpsCommandsTests
{
    [Fact]
    public async Task Token_IsSentAsBearer_AndMissingOrHalfCredentialsAreRefused()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct, o => o with { Auth = new VmmAuthOptions { Enabled = true, Tokens = ["tok-123"] } });

        var (noToken, _, noTokenErr) = await Cli(ct, "lsvm", "--url", vmm.Url);
        var (withToken, withTokenOut, _) = await Cli(ct, "lsvm", "--url", vmm.Url, "--token", "tok-123");
        var (half, _, halfErr) = await Cli(ct, "lsvm", "--url", vmm.Url, "--auth-user", "admin");
        var (basic, _, _) = await Cli(ct, "lsvm", "--url", vmm.Url, "--auth-user", "admin", "--auth-password", "tok-123");
        var compose = Path.Combine(vmm.Box.Root, "c.json");
        var env = Path.Combine(vmm.Box.Root, "env");
        File.WriteAllText(compose, VmmSandbox.Compose());
        File.WriteAllText(env, "FOO=1\n");
        var (deploy, _, deployErr) = await Cli(ct, "deploy", "--url", vmm.Url, "--token", "tok-123", "--name", "t", "--image", "dev", "--compose", compose,
            "--env-file", env, "--kms-url", vmm.KmsUrl, "--stopped", "--no-tee");
        var (logs, _, logsErr) = await Cli(ct, "logs", vmm.Manager.WorkDirs().Single().Path.Split('/')[^1], "--url", vmm.Url, "--token", "tok-123");

        Assert.Equal(1, noToken);
        Assert.Contains("unauthorized", noTokenErr, StringComparison.Ordinal);
        Assert.Equal(0, withToken);
        Assert.Contains("No VMs found", withTokenOut, StringComparison.Ordinal);
        Assert.Equal(2, half);
        Assert.Contains("password is missing", halfErr, StringComparison.Ordinal);
        Assert.Equal(0, basic);
        Assert.True(deploy == 0, deployErr);
        Assert.True(logs == 0, logsErr);

        // DSTACK_VMM_TOKEN, as vmm-cli reads it (set only here, after the token-less calls above; harmless to services without auth).
        int fromEnv;
        Environment.SetEnvironmentVariable("DSTACK_VMM_TOKEN", "tok-123");
        try
        {
            (fromEnv, _, _) = await Cli(ct, "lsvm", "--url", vmm.Url);
        }
        finally
        {
            Environment.SetEnvironmentVariable("DSTACK_VMM_TOKEN", null);
        }

        Assert.Equal(0, fromEnv);

        // The KMS reached directly for the env key never sees the VMM's token.
        Assert.Equal([""], vmm.KmsAuthorizations);
    }

    [Fact]
    public async Task Stop_IsGraceful_ThenForce_AndInfoShowsEachState()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var (id, work) = await VmmSandbox.RunningDevVmAsync(vmm.Manager, "s", ct);
        await using var qmp = new FakeQmp(work.QmpSocket);

        var (stopExit, stopOut, stopErr) = await Cli(ct, "stop", id, "--url", vmm.Url, "--no-wait");
        var (_, stopping, _) = await Cli(ct, "info", id, "--url", vmm.Url);
        var (_, table, _) = await Cli(ct, "lsvm", "--url", vmm.Url);
        var (forceExit, forceOut, _) = await Cli(ct, "stop", id, "-f", "--url", vmm.Url);
        var (_, stoppedJson, _) = await Cli(ct, "info", id, "--url", vmm.Url, "--json");

        Assert.True(stopExit == 0, stopErr);
        Assert.Contains($"Gracefully shutting down VM {id}", stopOut, StringComparison.Ordinal);
        Assert.Contains("Status: stopping — ACPI power button pressed", stopOut, StringComparison.Ordinal);
        Assert.Equal(["qmp_capabilities", "system_powerdown"], qmp.Commands);
        Assert.Contains("Status:        stopping", stopping, StringComparison.Ordinal);
        Assert.Contains("Shutdown:      ACPI power button pressed", stopping, StringComparison.Ordinal);
        Assert.Contains($"Compose hash:  {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(VmmSandbox.Compose())))}", stopping, StringComparison.Ordinal);
        Assert.Contains("│ stopping │", table, StringComparison.Ordinal);
        Assert.Equal(0, forceExit);
        Assert.Contains($"Forcefully stopped VM {id}", forceOut, StringComparison.Ordinal);
        Assert.Equal("stopped", JsonDocument.Parse(stoppedJson).RootElement.GetProperty("status").GetString());
        Assert.Null(VmProcess.RunningPid(work));
    }

    [Fact]
    public async Task Stop_WaitsUntilTheGuestHasPoweredOff()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var (id, work) = await VmmSandbox.RunningDevVmAsync(vmm.Manager, "w", ct);
        var pid = VmProcess.RunningPid(work)!.Value;

        // The "guest" powers off a moment after the button: qemu exits on its own.
        await using var qmp = new FakeQmp(work.QmpSocket, onCommand: c =>
        {
            if (c == "system_powerdown")
            {
                System.Diagnostics.Process.GetProcessById(pid).Kill();
            }
        });
        var (exit, output, error) = await Cli(ct, "stop", id, "--url", vmm.Url);

        Assert.True(exit == 0, error);
        Assert.EndsWith("Status: stopped", output.Trim(), StringComparison.Ordinal);
        Assert.Null(VmProcess.RunningPid(work));
        Assert.Equal("stopped", vmm.Manager.Info(work).Status);
    }

    [Fact]
    public async Task ResizeUpdatePortsAndUpdate_ChangeTheStoppedVm()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var id = await vmm.Manager.CreateAsync(new VmConfiguration { Name = "u", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true }, ct);
        var work = vmm.Manager.WorkDir(id);
        var dockerCompose = Path.Combine(vmm.Box.Root, "docker-compose.yml");
        File.WriteAllText(dockerCompose, "services:\n  web:\n    image: caddy\n");

        var (resizeExit, resizeOut, resizeErr) = await Cli(ct, "resize", id, "--url", vmm.Url, "--vcpu", "4", "--memory", "2G", "--disk", "30G");
        var (emptyExit, _, emptyErr) = await Cli(ct, "resize", id, "--url", vmm.Url);
        var (shrinkExit, _, shrinkErr) = await Cli(ct, "resize", id, "--url", vmm.Url, "--disk", "10G");
        var (portsExit, _, _) = await Cli(ct, "update-ports", id, "--url", vmm.Url, "--port", "tcp:0.0.0.0:18443:443", "--port", "udp:18053:53");
        var (updateExit, updateOut, updateErr) = await Cli(ct, "update", id, "--url", vmm.Url, "--swap", "2G", "--compose", dockerCompose, "--vcpu", "6", "--no-ports", "--kms-url", "https://kms.example:8000");

        Assert.True(resizeExit == 0, resizeErr);
        Assert.Contains($"Resized VM {id}", resizeOut, StringComparison.Ordinal);
        Assert.Equal(2, emptyExit);
        Assert.Contains("at least one parameter", emptyErr, StringComparison.Ordinal);
        Assert.Equal(1, shrinkExit);
        Assert.Contains("cannot shrink", shrinkErr, StringComparison.Ordinal);
        Assert.Equal(0, portsExit);
        Assert.True(updateExit == 0, updateErr);
        Assert.Contains($"Updated VM {id}: vCPU: 6, docker compose, swap: 2048MB, KMS URLs (1), port mappings (removed)", updateOut, StringComparison.Ordinal);

        var m = work.ReadManifest();
        Assert.Equal((6, 2048, 30), (m.Vcpu, m.Memory, m.DiskSize));
        Assert.Empty(m.PortMap);
        Assert.Equal(["https://kms.example:8000"], m.KmsUrls);
        var compose = File.ReadAllText(work.SharedFile("app-compose.json"));
        Assert.Contains($"Compose hash: {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(compose)))}", updateOut, StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(compose);
        Assert.Equal(2048L * 1024 * 1024, doc.RootElement.GetProperty("swap_size").GetInt64());
        Assert.Equal("services:\n  web:\n    image: caddy\n", doc.RootElement.GetProperty("docker_compose_file").GetString());
    }

    [Fact]
    public async Task UpdatePorts_ToAPortAnotherVmMaps_IsRefused_AndChangesNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var port = VmLifecycleTests.FreePort();
        await vmm.Manager.CreateAsync(new VmConfiguration { Name = "a", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Ports = [new PortMapping { Protocol = "tcp", HostPort = port, VmPort = 80 }] }, ct);
        var id = await vmm.Manager.CreateAsync(new VmConfiguration { Name = "b", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true }, ct);
        var before = File.ReadAllBytes(vmm.Manager.WorkDir(id).ManifestPath);

        var (exit, _, error) = await Cli(ct, "update-ports", id, "--url", vmm.Url, "--port", $"tcp:{port}:80");

        Assert.Equal(1, exit);
        Assert.Contains("is mapped by VM a", error, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(vmm.Manager.WorkDir(id).ManifestPath));
    }

    [Fact]
    public async Task DeploySwap_GoesIntoTheCompose_AndUpdateEnv_AllowsTheNewKeys()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var dir = vmm.Box.Root;
        var composePath = Path.Combine(dir, "app-compose.json");
        File.WriteAllText(composePath, VmmSandbox.Compose());
        File.WriteAllText(Path.Combine(dir, "env"), "FOO=1\nBAR=2\nAPP_LAUNCH_TOKEN=go\n");

        var (deployExit, deployOut, deployErr) = await Cli(ct, "deploy", "--url", vmm.Url, "--name", "w", "--image", "dev", "--compose", composePath, "--swap", "1G", "--stopped", "--no-tee");
        Assert.True(deployExit == 0, deployErr);
        var id = deployOut.Split('\n').Single(l => l.StartsWith("Created VM with ID: ", StringComparison.Ordinal))["Created VM with ID: ".Length..].Trim();
        var work = vmm.Manager.WorkDir(id);
        var deployed = File.ReadAllText(work.SharedFile("app-compose.json"));
        var (envExit, envOut, envErr) = await Cli(ct, "update-env", id, "--url", vmm.Url, "--env-file", Path.Combine(dir, "env"), "--kms-url", vmm.KmsUrl);
        var updated = File.ReadAllText(work.SharedFile("app-compose.json"));

        Assert.Contains("\"swap_size\": 1073741824", deployed, StringComparison.Ordinal);
        Assert.Contains($"compose hash {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(deployed)))}", deployOut, StringComparison.Ordinal);
        Assert.Contains($"App ID: {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(deployed)))[..40]}", deployOut, StringComparison.Ordinal);
        Assert.True(envExit == 0, envErr);
        Assert.Contains("allowed_envs updated", envOut, StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(updated);
        Assert.Equal(["FOO", "BAR", "APP_LAUNCH_TOKEN"], doc.RootElement.GetProperty("allowed_envs").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("go"u8)), doc.RootElement.GetProperty("launch_token_hash").GetString());
        Assert.Equal(1073741824, doc.RootElement.GetProperty("swap_size").GetInt64());
    }

    private static Task<(int Exit, string Output, string Error)> Cli(CancellationToken ct, params string[] args) => VmmCommandsTests.Cli(ct, args);
}
