using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Vms;

/// <summary>
/// ResizeVm and the resource fields of UpgradeApp/UpdateVm: applied at the next start, the data disk grown with
/// <c>qemu-img resize</c> (a fake that records its arguments), refused while qemu runs, and every refusal typed and
/// leaving the manifest and the disk as they were.
/// </summary>
public sealed class ResizeTests
{
    private const string Cmdline = "console=ttyS0";

    [Fact]
    public async Task AStoppedTdxVm_GrowsItsDisk_AndStartsWithTheNewShape()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        box.WriteImage("dstack-0.5.5", "0.5.5", Cmdline, withBios: true, rootfs: "rootfs.img.verity");
        box.WriteImage("dstack-0.5.6", "0.5.6", Cmdline, withBios: true, rootfs: "rootfs.img.verity");
        using var manager = box.Manager(box.WithTdx);
        var id = await manager.CreateAsync(new VmConfiguration { Name = "t", Image = "dstack-0.5.5", ComposeFile = VmmSandbox.Compose(), Vcpu = 2, Memory = 2048, DiskSize = 20, Stopped = true }, ct);
        var work = manager.WorkDir(id);

        // Never started: no disk yet, so the size is only recorded (the first start creates it at that size).
        await manager.ResizeAsync(new ResizeVmRequest { Id = id, DiskSize = 30 }, ct);
        Assert.False(File.Exists(box.QemuImgLog));

        await manager.StartAsync(id, ct);
        Assert.Equal($"create -f qcow2 {work.HdaPath} 30G", File.ReadAllLines(box.QemuImgLog).Single());
        await manager.StopAsync(id, force: true, ct);

        await manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 8, Memory = 16384, DiskSize = 100, Image = "dstack-0.5.6" }, ct);
        var argv = string.Join(' ', manager.CommandLine(work));

        Assert.Equal($"resize {work.HdaPath} 100G", File.ReadAllLines(box.QemuImgLog)[^1]);
        var m = work.ReadManifest();
        Assert.Equal((8, 16384, 100, "dstack-0.5.6"), (m.Vcpu, m.Memory, m.DiskSize, m.Image));
        Assert.Contains("-smp 8 -m 16384M", argv, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(box.ImagePath, "dstack-0.5.6", "bzImage"), argv, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARunningVm_IsRefused_AndADevVmRecordsTheNewShapeForItsNextStart()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager();
        var id = await manager.CreateAsync(new VmConfiguration { Name = "r", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, DiskSize = 10 }, ct);
        var work = manager.WorkDir(id);

        var running = await Assert.ThrowsAsync<VmmException>(() => manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 3 }, ct));
        await manager.StopAsync(id, force: true, ct);
        await manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 3, Memory = 3072, DiskSize = 12 }, ct);
        await manager.StartAsync(id, ct);
        await VmLifecycleTests.WaitFor(() => File.ReadAllText(work.SerialLog).Contains("fake guest ready", StringComparison.Ordinal), ct);

        Assert.Equal(VmmErrorCode.InvalidState, running.Code);
        Assert.Contains("-smp 3 -m 3072M", File.ReadAllText(work.SerialLog), StringComparison.Ordinal);
        Assert.Equal(12, work.ReadManifest().DiskSize);
        await manager.RemoveAsync(id, ct);
    }

    public static TheoryData<string, ResizeVmRequest, VmmErrorCode> Refusals => new()
    {
        { "nothing to change", new ResizeVmRequest(), VmmErrorCode.InvalidArgument },
        { "zero vcpu", new ResizeVmRequest { Vcpu = 0 }, VmmErrorCode.InvalidArgument },
        { "negative memory", new ResizeVmRequest { Memory = -1 }, VmmErrorCode.InvalidArgument },
        { "too much memory", new ResizeVmRequest { Memory = 5L * 1024 * 1024 }, VmmErrorCode.InvalidArgument },
        { "shrinking disk", new ResizeVmRequest { DiskSize = 19 }, VmmErrorCode.InvalidArgument },
        { "empty image", new ResizeVmRequest { Image = "" }, VmmErrorCode.InvalidArgument },
        { "unknown image", new ResizeVmRequest { Image = "nope" }, VmmErrorCode.UnknownImage },
        { "escaping image", new ResizeVmRequest { Image = "../images/dev" }, VmmErrorCode.UnknownImage },
        { "valid vcpu with a shrinking disk", new ResizeVmRequest { Vcpu = 4, DiskSize = 1 }, VmmErrorCode.InvalidArgument },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Refusals_AreTyped_AndChangeNothing(string why, ResizeVmRequest request, VmmErrorCode code)
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager(box.WithTdx);
        var (id, work, before) = await StoppedTdxVmWithDisk(box, manager, ct);

        var e = await Assert.ThrowsAsync<VmmException>(() => manager.ResizeAsync(request with { Id = id }, ct));
        Assert.True(code == e.Code, $"{why}: {e.Code} {e.Message}");
        if (request is not { Vcpu: null, Memory: null, DiskSize: null, Image: null })
        {
            // The same change through UpdateVm, beside other changes: refused as a whole.
            var viaUpdate = await Assert.ThrowsAsync<VmmException>(() => manager.UpgradeAsync(
                new UpgradeAppRequest { Id = id, Vcpu = request.Vcpu, Memory = request.Memory, DiskSize = request.DiskSize, Image = request.Image, UserConfig = "changed", UpdatePorts = true }, ct));
            Assert.Equal(code, viaUpdate.Code);
        }

        Assert.Equal(before, File.ReadAllBytes(work.ManifestPath));
        Assert.False(File.Exists(work.SharedFile(VmWorkDir.UserConfigFile)));
        Assert.False(File.Exists(box.QemuImgLog));
    }

    [Fact]
    public async Task AFailingQemuImg_LeavesTheManifestAsItWas()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager(box.WithTdx);
        var (id, work, before) = await StoppedTdxVmWithDisk(box, manager, ct);
        box.QemuImgFails = true;

        var e = await Assert.ThrowsAsync<VmmException>(() => manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 4, DiskSize = 40 }, ct));

        Assert.Equal(VmmErrorCode.DiskFailed, e.Code);
        Assert.Contains("injected failure", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(work.ManifestPath));
    }

    [Fact]
    public async Task UpdateVm_ChangesUrlsPortsAndTee_InOneValidatedStep()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager();
        var id = await manager.CreateAsync(new VmConfiguration { Name = "u", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true }, ct);
        var work = manager.WorkDir(id);

        await manager.UpgradeAsync(new UpgradeAppRequest
        {
            Id = id,
            UpdateKmsUrls = true,
            KmsUrls = ["https://kms.example:8000"],
            UpdateGatewayUrls = true,
            GatewayUrls = ["https://gw.example"],
            UpdatePorts = true,
            Ports = [new PortMapping { Protocol = "tcp", HostPort = 18080, VmPort = 80 }],
            Memory = 4096,
        }, ct);
        var badUrl = await Assert.ThrowsAsync<VmmException>(() => manager.UpgradeAsync(new UpgradeAppRequest { Id = id, UpdateKmsUrls = true, KmsUrls = ["file:///etc/passwd"], Memory = 8192 }, ct));

        var m = work.ReadManifest();
        Assert.Equal(["https://kms.example:8000"], m.KmsUrls);
        Assert.Equal(["https://gw.example"], m.GatewayUrls);
        Assert.Equal(18080, m.PortMap.Single().From);
        Assert.Equal(4096, m.Memory);
        Assert.Equal(VmmErrorCode.InvalidArgument, badUrl.Code);
    }

    /// <summary>A stopped TDX VM (20 GB) whose data disk exists; returns its manifest bytes as they are before the test acts.</summary>
    private static async Task<(string Id, VmWorkDir Work, byte[] Manifest)> StoppedTdxVmWithDisk(VmmSandbox box, VmManager manager, CancellationToken ct)
    {
        box.WriteImage("dstack-0.5.5", "0.5.5", Cmdline, withBios: true, rootfs: "rootfs.img.verity");
        var id = await manager.CreateAsync(new VmConfiguration { Name = "t", Image = "dstack-0.5.5", ComposeFile = VmmSandbox.Compose(), DiskSize = 20, Stopped = true }, ct);
        var work = manager.WorkDir(id);
        File.WriteAllText(work.HdaPath, "disk");
        return (id, work, File.ReadAllBytes(work.ManifestPath));
    }
}
