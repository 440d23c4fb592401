using System.Globalization;
using PrivateMl.Vmm.Images;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Qemu;

/// <summary>The host-wide QEMU settings of dstack's <c>[cvm]</c> section that shape the command line.</summary>
public sealed record QemuSettings
{
    public string QemuPath { get; init; } = "qemu-system-x86_64";

    public bool QmpSocket { get; init; }

    public bool HotplugOff { get; init; }

    public long PciHole64Size { get; init; }

    public bool UseMrConfigId { get; init; } = true;

    /// <summary>User-mode network (dstack's <c>[cvm.networking]</c> defaults).</summary>
    public string UserNet { get; init; } = "10.0.2.0/24";

    public string DhcpStart { get; init; } = "10.0.2.10";

    public bool Restrict { get; init; }
}

/// <summary>Per-launch inputs that are not in the manifest.</summary>
/// <param name="Cid">vsock guest CID (dstack allocates from 1000 up).</param>
/// <param name="MrConfigId">The 48-byte MRCONFIGID, or null to omit it (image &lt; 0.5.2 or use_mrconfigid off).</param>
/// <param name="NumaNodeOf">NUMA node of a GPU slot (hugepages); defaults to node 0.</param>
public sealed record QemuLaunch(int Cid, byte[]? MrConfigId, Func<string, int>? NumaNodeOf = null);

/// <summary>
/// Builds QEMU argument lists: the TDX form dstack-vmm v0.5.5 builds (dstack.md §11.6, in that order) and the
/// no-TEE development form (dev-vm.md). The result is an argument list — argv[0] is the emulator — never a shell string.
/// </summary>
public static class QemuCommandLine
{
    /// <summary>dstack-vmm's TDX command line.</summary>
    public static IReadOnlyList<string> Tdx(VmManifest manifest, VmImage image, VmWorkDir workDir, QemuSettings settings, QemuLaunch launch)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(workDir);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(launch);
        var a = new List<string> { settings.QemuPath, "-accel", "kvm", "-cpu", "host", "-nographic", "-nodefaults" };
        a.AddRange(["-chardev", $"pty,id=com0,path={workDir.SerialPty},logfile={workDir.SerialLog}", "-serial", "chardev:com0"]);
        if (settings.QmpSocket)
        {
            a.AddRange(["-qmp", $"unix:{workDir.QmpSocket},server,wait=off"]);
        }

        if (image.Bios is { } bios)
        {
            a.AddRange(["-bios", bios]);
        }

        a.AddRange(["-kernel", image.Kernel, "-initrd", image.Initrd]);
        if (settings.HotplugOff)
        {
            a.AddRange(["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]);
        }

        if (settings.PciHole64Size > 0)
        {
            a.AddRange(["-global", $"q35-pcihost.pci-hole64-size=0x{settings.PciHole64Size:x}"]);
        }

        if (image.Rootfs is { } rootfs)
        {
            switch (Path.GetExtension(rootfs))
            {
                case ".iso":
                    a.AddRange(["-cdrom", rootfs]);
                    break;
                case ".verity":
                    a.AddRange(["-drive", $"file={rootfs},if=none,id=hd0,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=hd0"]);
                    break;
                default:
                    throw new VmmException(VmmErrorCode.UnknownImage, $"image '{image.Name}': unsupported rootfs type {Path.GetExtension(rootfs)}");
            }
        }

        a.AddRange(["-drive", $"file={workDir.HdaPath},if=none,id=hd1", "-device", "virtio-blk-pci,drive=hd1"]);
        var netdev = $"user,id=net0,net={settings.UserNet},dhcpstart={settings.DhcpStart},restrict={(settings.Restrict ? "yes" : "no")}" + HostForwards(manifest);
        a.AddRange(["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]);
        a.AddRange(["-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx,hpet=off"]);
        a.AddRange(["-object", launch.MrConfigId is { } mr ? $"tdx-guest,id=tdx,mrconfigid={Convert.ToBase64String(mr)}" : "tdx-guest,id=tdx"]);
        a.AddRange(["-device", $"vhost-vsock-pci,guest-cid={launch.Cid}"]);
        a.AddRange(["-virtfs", $"local,path={workDir.SharedDir},mount_tag=host-shared,readonly={(image.Info.SharedReadOnly ? "on" : "off")},security_model=mapped,id=virtfs0"]);

        var smp = Math.Max(1, manifest.Vcpu);
        var mem = manifest.Memory;
        var gpus = manifest.Gpus ?? new GpuAssignment();
        var numaOf = launch.NumaNodeOf ?? (_ => 0);
        if (manifest.Hugepages)
        {
            // GPUs per host NUMA node, in node order (dstack iterates a HashMap; sorted keeps the line reproducible).
            var nodes = gpus.Gpus.GroupBy(g => numaOf(g.Slot)).ToDictionary(g => g.Key, g => g.Count());
            if (nodes.Count == 0)
            {
                nodes[0] = 0;
            }

            var n = nodes.Count;
            var vcpus = RoundUp(smp, n);
            var memGb = RoundUp(mem / 1024, n);
            smp = vcpus;
            mem = memGb * 1024;
            var busNr = 5;
            var ind = 0;
            foreach (var (node, count) in nodes.OrderBy(kv => kv.Key))
            {
                var cpuStart = ind * (vcpus / n);
                var cpuEnd = ((ind + 1) * (vcpus / n)) - 1;
                a.AddRange(["-numa", $"node,nodeid={ind},cpus={cpuStart}-{cpuEnd},memdev=mem{ind}"]);
                a.AddRange(["-object", $"memory-backend-file,id=mem{ind},size={memGb / n}G,mem-path=/dev/hugepages,share=on,prealloc=yes,host-nodes={node},policy=bind"]);
                a.AddRange(["-device", $"pxb-pcie,id=pcie.node{node},bus=pcie.0,addr={0xa + ind},numa_node={ind},bus_nr={busNr}"]);
                busNr += count + 1;
                ind++;
            }
        }

        if (gpus.Gpus.Count > 0)
        {
            a.AddRange(["-object", "iommufd,id=iommufd0"]);
            var dev = 1;
            foreach (var gpu in gpus.Gpus)
            {
                var bus = manifest.Hugepages ? $"pcie.node{numaOf(gpu.Slot)}" : "pcie.0";
                AddPassthrough(a, gpu.Slot, bus, dev++);
            }

            foreach (var bridge in gpus.Bridges)
            {
                AddPassthrough(a, bridge.Slot, "pcie.0", dev++);
            }
        }

        a.AddRange(["-smp", smp.ToString(CultureInfo.InvariantCulture), "-m", $"{mem}M"]);
        if (image.Info.Cmdline is { } cmdline)
        {
            a.AddRange(["-append", cmdline]);
        }

        return a;
    }

    /// <summary>
    /// The development (no-TEE) command line: q35, KVM when usable else TCG, a QMP socket (when settings say so), the image's kernel/initrd/cmdline,
    /// user-mode network with the port forwards, the shared folder read-only as <c>host-shared</c>, the serial console
    /// into serial.log, no data disk, and no reboot (a guest panic ends the process).
    /// </summary>
    public static IReadOnlyList<string> Development(VmManifest manifest, VmImage image, VmWorkDir workDir, QemuSettings settings, bool kvm)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(workDir);
        ArgumentNullException.ThrowIfNull(settings);
        var a = new List<string> { settings.QemuPath, "-machine", "q35" };
        a.AddRange(kvm ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", "tcg", "-cpu", "max"]);
        a.AddRange(["-smp", Math.Max(1, manifest.Vcpu).ToString(CultureInfo.InvariantCulture), "-m", $"{manifest.Memory}M"]);
        a.AddRange(["-nographic", "-nodefaults", "-no-reboot"]);
        a.AddRange(["-chardev", $"file,id=com0,path={workDir.SerialLog}", "-serial", "chardev:com0", "-monitor", "none"]);
        if (settings.QmpSocket)
        {
            // Graceful stop presses the ACPI power button through it (QMP system_powerdown).
            a.AddRange(["-qmp", $"unix:{workDir.QmpSocket},server,wait=off"]);
        }
        if (image.Bios is { } bios)
        {
            a.AddRange(["-bios", bios]);
        }

        a.AddRange(["-kernel", image.Kernel, "-initrd", image.Initrd]);
        if (image.Info.Cmdline is { } cmdline)
        {
            a.AddRange(["-append", cmdline]);
        }

        // romfile= (empty): no iPXE option ROM — the kernel is loaded directly, and under TCG the ROM costs seconds.
        a.AddRange(["-netdev", "user,id=net0" + HostForwards(manifest), "-device", "virtio-net-pci,netdev=net0,romfile="]);
        a.AddRange(["-virtfs", $"local,path={workDir.SharedDir},mount_tag=host-shared,security_model=none,readonly=on,id=virtfs0"]);
        if (manifest.Gpus is { } gpus && gpus.Gpus.Count + gpus.Bridges.Count > 0)
        {
            var dev = 1;
            foreach (var slot in gpus.AllSlots)
            {
                AddPassthrough(a, slot, "pcie.0", dev++, iommufd: false);
            }
        }

        return a;
    }

    private static string HostForwards(VmManifest manifest) =>
        string.Concat(manifest.PortMap.Select(p => $",hostfwd={p.Protocol}:{p.Address}:{p.From}-:{p.To}"));

    private static void AddPassthrough(List<string> a, string slot, string bus, int dev, bool iommufd = true)
    {
        a.AddRange(["-device", $"pcie-root-port,id=pci.{dev},bus={bus},chassis={dev}"]);
        a.AddRange(["-device", $"vfio-pci,host={slot},bus=pci.{dev}" + (iommufd ? ",iommufd=iommufd0" : "")]);
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
