using System.Security.Cryptography;
using System.Text;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Images;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Qemu;

/// <summary>
/// The TDX command line is compared argument for argument with the form dstack-vmm v0.5.5 builds (dstack.md §11.6,
/// items 1–15 in order), written out here from the note for a 2-GPU deploy and a --ppcie deploy.
/// </summary>
public sealed class QemuCommandLineTests
{
    private const string Cmdline = "console=ttyS0 init=/init dstack.rootfs_hash=abc";

    [Fact]
    public async Task TwoGpuDeploy_MatchesTheDocumentedForm()
    {
        using var box = Sandbox();
        using var manager = box.Manager(box.WithTdx);
        var compose = VmmSandbox.Compose();

        var (work, argv) = await CommandLineAsync(manager, Request(compose, TwoGpus()));

        var expected = Documented(box, work, compose,
        [
            "-object", "iommufd,id=iommufd0",
            "-device", "pcie-root-port,id=pci.1,bus=pcie.0,chassis=1", "-device", "vfio-pci,host=18:00.0,bus=pci.1,iommufd=iommufd0",
            "-device", "pcie-root-port,id=pci.2,bus=pcie.0,chassis=2", "-device", "vfio-pci,host=2a:00.0,bus=pci.2,iommufd=iommufd0",
        ]);
        Assert.Equal(expected, argv);
    }

    [Fact]
    public async Task PpcieDeploy_AttachesAllGpusThenAllNvSwitches()
    {
        using var box = Sandbox();
        using var manager = box.Manager(box.WithTdx);
        var compose = VmmSandbox.Compose();

        var (work, argv) = await CommandLineAsync(manager, Request(compose, new GpuConfig { AttachMode = "all" }));

        var expected = Documented(box, work, compose,
        [
            "-object", "iommufd,id=iommufd0",
            "-device", "pcie-root-port,id=pci.1,bus=pcie.0,chassis=1", "-device", "vfio-pci,host=18:00.0,bus=pci.1,iommufd=iommufd0",
            "-device", "pcie-root-port,id=pci.2,bus=pcie.0,chassis=2", "-device", "vfio-pci,host=2a:00.0,bus=pci.2,iommufd=iommufd0",
            "-device", "pcie-root-port,id=pci.3,bus=pcie.0,chassis=3", "-device", "vfio-pci,host=05:00.0,bus=pci.3,iommufd=iommufd0",
            "-device", "pcie-root-port,id=pci.4,bus=pcie.0,chassis=4", "-device", "vfio-pci,host=06:00.0,bus=pci.4,iommufd=iommufd0",
        ]);
        Assert.Equal(expected, argv);
        var manifest = work.ReadManifest();
        Assert.Equal("all", manifest.Gpus!.AttachMode);
        var vmConfig = Encoding.UTF8.GetString(SysConfig.VmConfig(manifest, VmImage.Load(box.ImagePath, "dstack-0.5.5")));
        Assert.Contains("\"num_gpus\":2,\"num_nvswitches\":2,", vmConfig, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hugepages_PutsEachGpuBehindItsNumaNodesPcieExpander()
    {
        using var box = Sandbox();
        using var manager = box.Manager(box.WithTdx);
        var compose = VmmSandbox.Compose();

        var argv = (await CommandLineAsync(manager, Request(compose, TwoGpus()) with { Hugepages = true, Vcpu = 3, Memory = 7168 })).Argv.ToList();

        // dstack.md §11.6 item 14: GPU 18:00.0 is on host node 0, 2a:00.0 on node 1 (fake sysfs numa_node); vCPUs and
        // GB rounded up to a multiple of the node count (3 → 4, 7 → 8), split evenly; bus_nr advances by GPUs + 1.
        string[] numa =
        [
            "-numa", "node,nodeid=0,cpus=0-1,memdev=mem0",
            "-object", "memory-backend-file,id=mem0,size=4G,mem-path=/dev/hugepages,share=on,prealloc=yes,host-nodes=0,policy=bind",
            "-device", "pxb-pcie,id=pcie.node0,bus=pcie.0,addr=10,numa_node=0,bus_nr=5",
            "-numa", "node,nodeid=1,cpus=2-3,memdev=mem1",
            "-object", "memory-backend-file,id=mem1,size=4G,mem-path=/dev/hugepages,share=on,prealloc=yes,host-nodes=1,policy=bind",
            "-device", "pxb-pcie,id=pcie.node1,bus=pcie.0,addr=11,numa_node=1,bus_nr=7",
            "-object", "iommufd,id=iommufd0",
            "-device", "pcie-root-port,id=pci.1,bus=pcie.node0,chassis=1", "-device", "vfio-pci,host=18:00.0,bus=pci.1,iommufd=iommufd0",
            "-device", "pcie-root-port,id=pci.2,bus=pcie.node1,chassis=2", "-device", "vfio-pci,host=2a:00.0,bus=pci.2,iommufd=iommufd0",
            "-smp", "4", "-m", "8192M", "-append", Cmdline,
        ];
        Assert.Equal(numa, argv.Skip(argv.IndexOf("-virtfs") + 2));
    }

    [Fact]
    public async Task PinNuma_WrapsQemuInTasksetForTheFirstGpusNode()
    {
        using var box = Sandbox();
        var node1 = Directory.CreateDirectory(Path.Combine(box.Sysfs, "devices", "system", "node", "node1")).FullName;
        File.WriteAllText(Path.Combine(node1, "cpulist"), "48-95,144-191\n");
        using var manager = box.Manager(box.WithTdx);

        var (_, argv) = await CommandLineAsync(manager, Request(VmmSandbox.Compose(), new GpuConfig { AttachMode = "listed", Gpus = [new() { Slot = FakeSysfs.Gpu2 }] }) with { PinNuma = true });
        var noGpu = await manager.CreateAsync(Request(VmmSandbox.Compose(), null) with { PinNuma = true, Ports = [] }, TestContext.Current.CancellationToken);

        Assert.Equal(["taskset", "-c", "48-95,144-191", box.FakeQemu, "-accel"], argv.Take(5));
        Assert.Equal(VmmErrorCode.HostUnsupported, Assert.Throws<VmmException>(() => manager.CommandLine(manager.WorkDir(noGpu))).Code); // node0 has no cpulist here
    }

    [Fact]
    public async Task ImageBefore052_GetsNoMrConfigId()
    {
        using var box = new VmmSandbox();
        box.WriteImage("dstack-0.5.1", "0.5.1", Cmdline);
        using var manager = box.Manager(box.WithTdx);

        var (_, argv) = await CommandLineAsync(manager, Request(VmmSandbox.Compose(), null) with { Image = "dstack-0.5.1" });

        Assert.Equal("tdx-guest,id=tdx", argv[argv.ToList().IndexOf("-object") + 1]);
        Assert.DoesNotContain("-bios", argv);
    }

    [Fact]
    public async Task NoTee_BuildsTheDevelopmentCommandLine_WithTcgWhenKvmIsUnusable()
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager(box.NoTdx);

        var (work, argv) = await CommandLineAsync(manager, Request(VmmSandbox.Compose(), null) with { Image = "dev", NoTee = true, Vcpu = 2, Memory = 2048 });

        var img = Path.Combine(box.ImagePath, "dev");
        string[] expected =
        [
            box.FakeQemu, "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048M",
            "-nographic", "-nodefaults", "-no-reboot",
            "-chardev", $"file,id=com0,path={work.SerialLog}", "-serial", "chardev:com0", "-monitor", "none",
            "-qmp", $"unix:{work.QmpSocket},server,wait=off",
            "-kernel", Path.Combine(img, "bzImage"), "-initrd", Path.Combine(img, "initramfs.cpio.gz"), "-append", "console=ttyS0 panic=1",
            "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:8443-:443", "-device", "virtio-net-pci,netdev=net0,romfile=",
            "-virtfs", $"local,path={work.SharedDir},mount_tag=host-shared,security_model=none,readonly=on,id=virtfs0",
        ];
        Assert.Equal(expected, argv);
    }

    [Fact]
    public async Task NoTee_UsesKvmWhenUsable()
    {
        using var box = new VmmSandbox();
        using var manager = box.Manager(box.NoTdx with { KvmUsable = true });

        var (_, argv) = await CommandLineAsync(manager, Request(VmmSandbox.Compose(), null) with { Image = "dev", NoTee = true });

        Assert.Equal(["-accel", "kvm", "-cpu", "host"], argv.Skip(3).Take(4));
    }

    /// <summary>A sandbox holding the dstack 0.5.5 image the documented command lines boot.</summary>
    private static VmmSandbox Sandbox()
    {
        var box = new VmmSandbox();
        box.WriteImage("dstack-0.5.5", "0.5.5", Cmdline, withBios: true, rootfs: "rootfs.img.verity");
        return box;
    }

    private static GpuConfig TwoGpus() => new() { AttachMode = "listed", Gpus = [new() { Slot = FakeSysfs.Gpu1 }, new() { Slot = FakeSysfs.Gpu2 }] };

    /// <summary>Creates the VM (stopped) and returns its work directory and the command line that would start it.</summary>
    private static async Task<(VmWorkDir Work, IReadOnlyList<string> Argv)> CommandLineAsync(VmManager manager, VmConfiguration request)
    {
        var id = await manager.CreateAsync(request, TestContext.Current.CancellationToken);
        var work = manager.WorkDir(id);
        return (work, manager.CommandLine(work));
    }

    private static VmConfiguration Request(string compose, GpuConfig? gpus) => new()
    {
        Name = "app",
        Image = "dstack-0.5.5",
        ComposeFile = compose,
        Vcpu = 4,
        Memory = 8192,
        DiskSize = 100,
        Ports = [new PortMapping { Protocol = "tcp", HostAddress = "127.0.0.1", HostPort = 8443, VmPort = 443 }],
        Gpus = gpus,
        Stopped = true,
    };

    /// <summary>dstack.md §11.6 items 1–15 for this VM, with <paramref name="gpuArgs"/> as item 13.</summary>
    private static List<string> Documented(VmmSandbox box, VmWorkDir wd, string compose, string[] gpuArgs)
    {
        var img = Path.Combine(box.ImagePath, "dstack-0.5.5");
        var mrConfigId = new byte[48];
        mrConfigId[0] = 1;
        SHA256.HashData(Encoding.UTF8.GetBytes(compose)).CopyTo(mrConfigId, 1);
        var args = new List<string>
        {
            box.FakeQemu, "-accel", "kvm", "-cpu", "host", "-nographic", "-nodefaults",                                         // 1
            "-chardev", $"pty,id=com0,path={wd.Path}/serial.pty,logfile={wd.Path}/serial.log", "-serial", "chardev:com0",       // 2
            "-qmp", $"unix:{wd.Path}/qmp.sock,server,wait=off",                                                                 // 3 (qmp_socket, on by default here)
            "-bios", $"{img}/ovmf.fd", "-kernel", $"{img}/bzImage", "-initrd", $"{img}/initramfs.cpio.gz",                      // 4
            "-drive", $"file={img}/rootfs.img.verity,if=none,id=hd0,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=hd0", // 6
            "-drive", $"file={wd.Path}/hda.img,if=none,id=hd1", "-device", "virtio-blk-pci,drive=hd1",                            // 7
            "-netdev", "user,id=net0,net=10.0.2.0/24,dhcpstart=10.0.2.10,restrict=no,hostfwd=tcp:127.0.0.1:8443-:443",          // 8
            "-device", "virtio-net-pci,netdev=net0",
            "-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx,hpet=off",                                     // 9
            "-object", $"tdx-guest,id=tdx,mrconfigid={Convert.ToBase64String(mrConfigId)}",                                      // 10
            "-device", "vhost-vsock-pci,guest-cid=1000",                                                                        // 11
            "-virtfs", $"local,path={wd.Path}/shared,mount_tag=host-shared,readonly=off,security_model=mapped,id=virtfs0",       // 12
        };
        args.AddRange(gpuArgs);                                                                                                 // 13
        args.AddRange(["-smp", "4", "-m", "8192M", "-append", Cmdline]);                                                        // 15
        return args;
    }
}
