using System.Net;
using System.Net.Sockets;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Vms;

/// <summary>Bad input gets a typed error naming the problem, and leaves no work directory behind.</summary>
public sealed class CreateVmRefusalTests
{
    private static VmConfiguration Valid => new()
    {
        Name = "app",
        Image = "dev",
        ComposeFile = VmmSandbox.Compose(),
        NoTee = true,
        Stopped = true,
    };

    public static TheoryData<string, VmmErrorCode, string> Cases => new()
    {
        { "unknown-image", VmmErrorCode.UnknownImage, "no image 'nope'" },
        { "image-escape", VmmErrorCode.UnknownImage, "not an image name" },
        { "gpu-missing", VmmErrorCode.UnknownGpu, "no NVIDIA GPU at slot '99:00.0'" },
        { "gpu-not-nvidia", VmmErrorCode.UnknownGpu, "00:1f.6" },
        { "gpu-twice", VmmErrorCode.InvalidArgument, "listed twice" },
        { "compose-malformed", VmmErrorCode.InvalidCompose, "invalid app compose" },
        { "compose-empty", VmmErrorCode.InvalidCompose, "empty" },
        { "name-escape", VmmErrorCode.InvalidArgument, "invalid VM name" },
        { "name-slash", VmmErrorCode.InvalidArgument, "invalid VM name" },
        { "name-empty", VmmErrorCode.InvalidArgument, "invalid VM name" },
        { "port-protocol", VmmErrorCode.InvalidArgument, "tcp or udp" },
        { "port-range", VmmErrorCode.InvalidArgument, "1..65535" },
        { "port-address", VmmErrorCode.InvalidArgument, "IPv4" },
        { "port-twice", VmmErrorCode.PortInUse, "mapped twice" },
        { "memory", VmmErrorCode.InvalidArgument, "memory" },
        { "app-id", VmmErrorCode.InvalidArgument, "app_id" },
        { "env-hex", VmmErrorCode.InvalidArgument, "encrypted_env" },
        { "tee-on-this-host", VmmErrorCode.HostUnsupported, "--no-tee" },
        { "attach-mode", VmmErrorCode.InvalidArgument, "attach mode" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Refuses_AndLeavesNoVm(string name, VmmErrorCode code, string mentions)
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager();
        var request = name switch
        {
            "unknown-image" => Valid with { Image = "nope" },
            "image-escape" => Valid with { Image = "../images/dev" },
            "gpu-missing" => Valid with { Gpus = Listed("99:00.0") },
            "gpu-not-nvidia" => Valid with { Gpus = Listed("00:1f.6") },
            "gpu-twice" => Valid with { Gpus = Listed(FakeSysfs.Gpu1, "0000:18:00.0") },
            "compose-malformed" => Valid with { ComposeFile = "{\"manifest_version\":2,\"name\":\"a\"" },
            "compose-empty" => Valid with { ComposeFile = "" },
            "name-escape" => Valid with { Name = "../../etc" },
            "name-slash" => Valid with { Name = "a/b" },
            "name-empty" => Valid with { Name = "" },
            "port-protocol" => Valid with { Ports = [new PortMapping { Protocol = "sctp", HostPort = 1, VmPort = 1 }] },
            "port-range" => Valid with { Ports = [new PortMapping { Protocol = "tcp", HostPort = 70000, VmPort = 1 }] },
            "port-address" => Valid with { Ports = [new PortMapping { Protocol = "tcp", HostAddress = "localhost", HostPort = 8000, VmPort = 1 }] },
            "port-twice" => Valid with { Ports = [new PortMapping { Protocol = "tcp", HostPort = 8000, VmPort = 1 }, new PortMapping { Protocol = "tcp", HostPort = 8000, VmPort = 2 }] },
            "memory" => Valid with { Memory = 10 },
            "app-id" => Valid with { AppId = "0x1234" },
            "env-hex" => Valid with { EncryptedEnv = "zz" },
            "tee-on-this-host" => Valid with { NoTee = false },
            "attach-mode" => Valid with { Gpus = new GpuConfig { AttachMode = "some" } },
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };

        var e = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(request, TestContext.Current.CancellationToken));

        Assert.Equal(code, e.Code);
        Assert.Contains(mentions, e.Message, StringComparison.Ordinal);
        Assert.Empty(box.RunEntries());
    }

    [Fact]
    public async Task Refuses_AHostPortThatIsAlreadyBound()
    {
        using var box = new VmmSandbox();
        using var manager = new VmManager(box.Options, () => box.NoTdx);
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var e = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(
            Valid with { Stopped = false, Ports = [new PortMapping { Protocol = "tcp", HostAddress = "127.0.0.1", HostPort = port, VmPort = 8000 }] },
            TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.PortInUse, e.Code);
        Assert.Contains($"127.0.0.1:{port}", e.Message, StringComparison.Ordinal);
        Assert.Empty(box.RunEntries());
    }

    [Fact]
    public async Task Refuses_AGpuAnotherVmHolds_AndAHostPortAnotherVmMaps()
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager(box.WithTdx);
        var first = Valid with { NoTee = false, Image = "dev", Gpus = Listed(FakeSysfs.Gpu1), Ports = [new PortMapping { Protocol = "tcp", HostPort = 18000, VmPort = 80 }] };
        var id = await manager.CreateAsync(first, TestContext.Current.CancellationToken);
        manager.WorkDir(id).Started = true; // as if it had been started

        var gpu = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(first with { Ports = [], Gpus = Listed(FakeSysfs.Gpu2, FakeSysfs.Gpu1) }, TestContext.Current.CancellationToken));
        var ppcie = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(first with { Ports = [], Gpus = new GpuConfig { AttachMode = "all" } }, TestContext.Current.CancellationToken));
        var port = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(first with { Gpus = null }, TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.GpuInUse, gpu.Code);
        Assert.Contains(FakeSysfs.Gpu1, gpu.Message, StringComparison.Ordinal);
        Assert.Equal(VmmErrorCode.GpuInUse, ppcie.Code);
        Assert.Equal(VmmErrorCode.PortInUse, port.Code);
        Assert.Single(box.RunEntries());
        Assert.False(manager.ListGpus().Gpus.Single(g => g.Slot == FakeSysfs.Gpu1).IsFree);
        Assert.True(manager.ListGpus().Gpus.Single(g => g.Slot == FakeSysfs.Gpu2).IsFree);
    }

    [Fact]
    public async Task Refuses_Tdx_OnAHostWithoutQemu_NamingTheReason()
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager(new PrivateMl.Vmm.Qemu.HostCapabilities(null, null, false, false, false));

        var e = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(Valid with { NoTee = false }, TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.HostUnsupported, e.Code);
        Assert.Contains("no qemu", e.Message, StringComparison.Ordinal);
        Assert.Empty(box.RunEntries());
    }

    [Fact]
    public async Task Refuses_ToStart_WithoutQemu_AndRemovesTheHalfMadeVm()
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager(new PrivateMl.Vmm.Qemu.HostCapabilities(null, null, false, false, false));

        var e = await Assert.ThrowsAsync<VmmException>(() => manager.CreateAsync(Valid with { Stopped = false }, TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.HostUnsupported, e.Code);
        Assert.Empty(box.RunEntries());
    }

    [Fact]
    public async Task ServiceWideNoTee_MakesEveryVmADevelopmentVm()
    {
        using var box = new VmmSandbox();
        using var manager = new VmManager(box.Options with { NoTee = true }, () => box.NoTdx);

        var id = await manager.CreateAsync(Valid with { NoTee = false }, TestContext.Current.CancellationToken);

        Assert.True(manager.WorkDir(id).ReadManifest().NoTee);
        Assert.Contains("tcg", manager.CommandLine(manager.WorkDir(id)));
    }

    [Theory]
    [InlineData("not-a-uuid")]
    [InlineData("../run")]
    [InlineData("00000000-0000-0000-0000-000000000000")]
    public void UnknownOrEscapingIds_AreUnknownVm(string id)
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager();

        Assert.Equal(VmmErrorCode.UnknownVm, Assert.Throws<VmmException>(() => manager.WorkDir(id)).Code);
    }

    private static GpuConfig Listed(params string[] slots) => new() { AttachMode = "listed", Gpus = slots.Select(s => new GpuSpec { Slot = s }).ToList() };
}
