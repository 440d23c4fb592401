using System.CommandLine;
using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Env;
using PrivateMl.Cli;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Tests.Vms;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Cli;

/// <summary><c>privateml vmm …</c> driven like vmm-cli.py against the service (with a fake qemu and a fake KMS).</summary>
public sealed class VmmCommandsTests
{
    [Fact]
    public async Task ComposeDeployLogsUpdateEnvStopStartRemove_WorkEndToEnd()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var dir = vmm.Box.Root;
        File.WriteAllText(Path.Combine(dir, "docker-compose.yml"), "services:\n  app:\n    image: nginx\n");
        File.WriteAllText(Path.Combine(dir, "env"), "FOO=bar\nSECRET = s3cr3t \n");
        var composePath = Path.Combine(dir, "app-compose.json");
        var port = VmLifecycleTests.FreePort();

        var (composeExit, composeOut, _) = await Cli(ct, "compose", "--name", "demo", "--docker-compose", Path.Combine(dir, "docker-compose.yml"), "--env-file", Path.Combine(dir, "env"), "--kms", "--output", composePath);
        var (deployExit, deployOut, deployErr) = await Cli(ct, "deploy", "--url", vmm.Url, "--name", "demo", "--image", "dev", "--compose", composePath,
            "--memory", "1G", "--port", $"tcp:127.0.0.1:{port}:8000", "--env-file", Path.Combine(dir, "env"), "--kms-url", vmm.KmsUrl, "--no-tee");

        Assert.Equal(0, composeExit);
        var composeBytes = File.ReadAllBytes(composePath);
        Assert.Contains($"Compose hash: {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(composeBytes))}", composeOut, StringComparison.Ordinal);
        Assert.True(deployExit == 0, deployErr);
        var id = deployOut.Split('\n').Single(l => l.StartsWith("Created VM with ID: ", StringComparison.Ordinal))["Created VM with ID: ".Length..].Trim();
        var work = vmm.Manager.WorkDir(id);
        Assert.Equal(composeBytes, File.ReadAllBytes(work.SharedFile("app-compose.json")));
        Assert.Equal(1024, work.ReadManifest().Memory);
        Assert.Equal("{\"env\":[{\"key\":\"FOO\",\"value\":\"bar\"},{\"key\":\"SECRET\",\"value\":\"s3cr3t\"}]}", Decrypt(work));

        await VmLifecycleTests.WaitFor(() => File.ReadAllText(work.SerialLog).Contains("fake guest ready", StringComparison.Ordinal), ct);
        var (_, lsvm, _) = await Cli(ct, "lsvm", "--url", vmm.Url, "--json");
        var (_, table, _) = await Cli(ct, "lsvm", "--url", vmm.Url, "-v");
        var (_, logs, _) = await Cli(ct, "logs", id, "--url", vmm.Url, "-n", "1");
        var (_, allLogs, _) = await Cli(ct, "logs", id, "--url", vmm.Url, "-n", "100");
        Assert.Equal("running", JsonDocument.Parse(lsvm).RootElement[0].GetProperty("status").GetString());
        Assert.Contains("│ demo ", table, StringComparison.Ordinal);
        Assert.Contains("1024MB", table, StringComparison.Ordinal);
        Assert.Equal("fake guest ready", logs.Trim());
        Assert.StartsWith("fake guest booting", allLogs, StringComparison.Ordinal);

        File.WriteAllText(Path.Combine(dir, "env2"), "FOO=changed\n");
        var (updateExit, updateOut, updateErr) = await Cli(ct, "update-env", id, "--url", vmm.Url, "--env-file", Path.Combine(dir, "env2"), "--kms-url", vmm.KmsUrl);
        Assert.True(updateExit == 0, updateErr);
        Assert.Contains($"Environment variables updated for VM {id}", updateOut, StringComparison.Ordinal);
        Assert.Equal("{\"env\":[{\"key\":\"FOO\",\"value\":\"changed\"}]}", Decrypt(work));

        var pid = VmProcess.RunningPid(work)!.Value;
        Assert.Equal(0, (await Cli(ct, "stop", id, "--url", vmm.Url)).Exit);
        Assert.False(Directory.Exists($"/proc/{pid}"));
        Assert.Equal(0, (await Cli(ct, "start", id, "--url", vmm.Url)).Exit);
        Assert.NotNull(VmProcess.RunningPid(work));
        var (removeExit, removeOut, _) = await Cli(ct, "remove", id, "--url", vmm.Url);
        Assert.Equal(0, removeExit);
        Assert.Contains($"Removed VM {id}", removeOut, StringComparison.Ordinal);
        Assert.Empty(vmm.Box.RunEntries());
    }

    [Theory]
    [InlineData("tcp:8000")]
    [InlineData("tcp:a:b:c:d")]
    [InlineData("tcp:127.0.0.1:x:80")]
    [InlineData("icmp:1:2")]
    public async Task Deploy_WithAMalformedPortSpec_Exits2_AndCreatesNothing(string spec)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var compose = Path.Combine(vmm.Box.Root, "c.json");
        File.WriteAllText(compose, VmmSandbox.Compose());

        var (exit, _, error) = await Cli(ct, "deploy", "--url", vmm.Url, "--name", "x", "--image", "dev", "--compose", compose, "--port", spec, "--no-tee");

        Assert.Equal(2, exit); // usage or input error
        Assert.Contains("Invalid port mapping format", error, StringComparison.Ordinal);
        Assert.Empty(vmm.Box.RunEntries());
    }

    [Fact]
    public async Task Deploy_WithoutNoTee_OnAHostWithoutTdx_IsRefusedClearly()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        var compose = Path.Combine(vmm.Box.Root, "c.json");
        File.WriteAllText(compose, VmmSandbox.Compose());

        var (exit, _, error) = await Cli(ct, "deploy", "--url", vmm.Url, "--name", "x", "--image", "dev", "--compose", compose);

        Assert.Equal(1, exit); // rejected
        Assert.Contains("cannot run TDX guests", error, StringComparison.Ordinal);
        Assert.Contains("--no-tee", error, StringComparison.Ordinal);
        Assert.Empty(vmm.Box.RunEntries());
    }

    [Fact]
    public async Task Lsgpu_FromAFakeSysfs_ShowsIommuGroupAndVfio()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();

        var (exit, output, _) = await Cli(ct, "lsgpu", "--sysfs", box.Sysfs);
        var (_, json, _) = await Cli(ct, "lsgpu", "--sysfs", box.Sysfs, "--json");

        Assert.Equal(0, exit);
        Assert.Contains("│ 18:00.0 │ 10de:2330  │ 3D controller: NVIDIA Corporation GH100 [H100 SXM5 80GB] (rev a1) │", output, StringComparison.Ordinal);
        var gpus = JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
        Assert.Equal([FakeSysfs.Switch1, FakeSysfs.Switch2, FakeSysfs.Gpu1, FakeSysfs.Gpu2], gpus.Select(g => g.GetProperty("slot").GetString()));
        Assert.Equal("25", gpus[2].GetProperty("iommu_group").GetString());
        Assert.True(gpus[2].GetProperty("vfio").GetBoolean());
        Assert.False(gpus[3].GetProperty("vfio").GetBoolean());
        Assert.Equal("nvidia", gpus[3].GetProperty("driver").GetString());
        Assert.Equal("nvswitch", gpus[0].GetProperty("kind").GetString());
        Assert.Equal(JsonValueKind.Null, gpus[1].GetProperty("driver").ValueKind);
    }

    [Fact]
    public async Task NewThenRunDryRun_PrintsTheDevelopmentCommandLine()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        var yaml = Path.Combine(box.Root, "docker-compose.yaml");
        File.WriteAllText(yaml, "services: {}\n");
        var vmDir = Path.Combine(box.Root, "myvm");

        var (newExit, _, newErr) = await Cli(ct, "new", yaml, "-o", vmDir, "-i", Path.Combine(box.ImagePath, "dev"), "-m", "1G", "-p", "tcp:18080:80", "--lkp");
        var (runExit, runOut, runErr) = await Cli(ct, "run", vmDir, "--no-tee", "--dry-run");

        Assert.True(newExit == 0, newErr);
        Assert.Contains("\"local_key_provider_enabled\": true", File.ReadAllText(Path.Combine(vmDir, "shared", "app-compose.json")), StringComparison.Ordinal);
        Assert.True(runExit == 0, runErr);
        Assert.Contains("-m 1024M", runOut, StringComparison.Ordinal);
        Assert.Contains("hostfwd=tcp:127.0.0.1:18080-:80", runOut, StringComparison.Ordinal);
        Assert.Contains($"mount_tag=host-shared", runOut, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(vmDir, "shared", ".sys-config.json")));
    }

    private static string Decrypt(VmWorkDir work) =>
        Encoding.UTF8.GetString(EncryptedEnv.Decrypt(File.ReadAllBytes(work.SharedFile(".encrypted-env")), RunningVmm.EnvCryptKey));

    internal static async Task<(int Exit, string Output, string Error)> Cli(CancellationToken ct, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await Program.BuildRoot().Parse(["vmm", .. args]).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, ct);
        return (exit, output.ToString(), error.ToString());
    }
}
