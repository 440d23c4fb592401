using System.Text;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Qemu;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Support;

/// <summary>
/// A throw-away host: an image directory with one image (<c>dev</c>, version 0.5.5), a run directory, a fake sysfs
/// with two H100s, two NVSwitches and some non-GPU devices, and a fake <c>qemu-system-x86_64</c> (a shell script that
/// writes to the serial log it is given and then waits) so process supervision is tested without an emulator.
/// </summary>
internal sealed class VmmSandbox : IDisposable
{
    public VmmSandbox()
    {
        Root = Directory.CreateTempSubdirectory("pml-vmm-").FullName;
        ImagePath = Directory.CreateDirectory(Path.Combine(Root, "images")).FullName;
        RunPath = Path.Combine(Root, "run");
        Sysfs = Path.Combine(Root, "sys");
        WriteImage("dev", "0.5.5", cmdline: "console=ttyS0 panic=1");
        FakeSysfs.Write(Sysfs);
        FakeQemu = Path.Combine(Root, "bin", "qemu-system-x86_64");
        Directory.CreateDirectory(Path.GetDirectoryName(FakeQemu)!);
        File.WriteAllText(FakeQemu, """
            #!/bin/sh
            # Fake qemu: find the serial log in "-chardev file,...,path=X", write a boot banner, wait for a signal.
            log=""
            prev=""
            for a in "$@"; do
              if [ "$prev" = "-chardev" ]; then log="${a##*path=}"; fi
              prev="$a"
            done
            echo "fake guest booting" >> "$log"
            echo "args: $*" >> "$log"
            echo "fake guest ready" >> "$log"
            while true; do sleep 0.1; done
            """.Replace("\r", "", StringComparison.Ordinal));
        FakeQemuImg = Path.Combine(Root, "bin", "qemu-img");
        File.WriteAllText(FakeQemuImg, $$"""
            #!/bin/sh
            # Fake qemu-img: records its arguments; fails while the file "qemu-img.fail" exists; "create" makes the image file.
            echo "$*" >> "{{QemuImgLog}}"
            if [ -e "{{Path.Combine(Root, "qemu-img.fail")}}" ]; then echo "qemu-img: Could not resize: injected failure" >&2; exit 1; fi
            if [ "$1" = create ]; then for a in "$@"; do last2="$last1"; last1="$a"; done; : > "$last2"; fi
            exit 0
            """.Replace("\r", "", StringComparison.Ordinal));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(FakeQemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.SetUnixFileMode(FakeQemuImg, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public string FakeQemuImg { get; }

    /// <summary>One line per fake qemu-img run: its arguments.</summary>
    public string QemuImgLog => Path.Combine(Root, "qemu-img.log");

    /// <summary>While this is true, the fake qemu-img fails.</summary>
    public bool QemuImgFails
    {
        set
        {
            var flag = Path.Combine(Root, "qemu-img.fail");
            if (value)
            {
                File.WriteAllText(flag, "");
            }
            else
            {
                File.Delete(flag);
            }
        }
    }

    public string Root { get; }

    public string ImagePath { get; }

    public string RunPath { get; }

    public string Sysfs { get; }

    public string FakeQemu { get; }

    public VmmOptions Options => new()
    {
        Address = "http://127.0.0.1:0",
        ImagePath = ImagePath,
        RunPath = RunPath,
        SysfsRoot = Sysfs,
        QemuPath = FakeQemu,
        QemuImgPath = FakeQemuImg,
        KmsUrls = ["http://127.0.0.1:8011"],
    };

    /// <summary>This host: the fake qemu, no TDX, no KVM (as on the development machine).</summary>
    public HostCapabilities NoTdx => new(FakeQemu, "7.2.19", QemuHasTdx: false, KvmUsable: false, KvmHasTdx: false);

    public HostCapabilities WithTdx => new(FakeQemu, "10.1.0", QemuHasTdx: true, KvmUsable: true, KvmHasTdx: true);

    public VmManager Manager(HostCapabilities? caps = null, Func<string, bool>? portFree = null, TimeProvider? time = null) =>
        new(Options, () => caps ?? NoTdx, time ?? TimeProvider.System, portFree);

    public static string Compose(string name = "app") => Encoding.UTF8.GetString(AppComposeBuilder.VmmCli(new AppComposeOptions
    {
        Name = name,
        DockerComposeFile = "services:\n  app:\n    image: nginx\n",
        AllowedEnvs = ["FOO"],
    }));

    public void WriteImage(string name, string version, string? cmdline = null, bool withBios = false, string? rootfs = null)
    {
        var dir = Directory.CreateDirectory(Path.Combine(ImagePath, name)).FullName;
        File.WriteAllText(Path.Combine(dir, "bzImage"), "kernel");
        File.WriteAllText(Path.Combine(dir, "initramfs.cpio.gz"), "initrd");
        if (withBios)
        {
            File.WriteAllText(Path.Combine(dir, "ovmf.fd"), "bios");
        }

        if (rootfs is not null)
        {
            File.WriteAllText(Path.Combine(dir, rootfs), "rootfs");
        }

        var meta = new StringBuilder("{");
        meta.Append("\"kernel\":\"bzImage\",\"initrd\":\"initramfs.cpio.gz\"");
        if (cmdline is not null)
        {
            meta.Append($",\"cmdline\":\"{cmdline}\"");
        }

        if (withBios)
        {
            meta.Append(",\"bios\":\"ovmf.fd\"");
        }

        if (rootfs is not null)
        {
            meta.Append($",\"rootfs\":\"{rootfs}\"");
        }

        meta.Append($",\"version\":\"{version}\",\"is_dev\":true}}");
        File.WriteAllText(Path.Combine(dir, "metadata.json"), meta.ToString());
        File.WriteAllText(Path.Combine(dir, "digest.txt"), new string('a', 64) + "\n");
    }

    /// <summary>Creates and starts a development VM on the fake qemu and waits until its "guest" is up.</summary>
    public static async Task<(string Id, VmWorkDir Work)> RunningDevVmAsync(VmManager manager, string name, CancellationToken ct)
    {
        var id = await manager.CreateAsync(new VmConfiguration { Name = name, Image = "dev", ComposeFile = Compose(), NoTee = true }, ct);
        var work = manager.WorkDir(id);
        await Vms.VmLifecycleTests.WaitFor(() => File.ReadAllText(work.SerialLog).Contains("fake guest ready", StringComparison.Ordinal), ct);
        return (id, work);
    }

    /// <summary>Entries under run_path (a failed create must leave none).</summary>
    public string[] RunEntries() => Directory.Exists(RunPath) ? Directory.GetFileSystemEntries(RunPath) : [];

    public void Dispose()
    {
        // Never leave a fake qemu running.
        if (Directory.Exists(RunPath))
        {
            foreach (var dir in Directory.GetDirectories(RunPath))
            {
                var work = new VmWorkDir(dir);
                if (VmProcess.RunningPid(work) is { } pid)
                {
                    try
                    {
                        System.Diagnostics.Process.GetProcessById(pid).Kill();
                    }
                    catch (ArgumentException)
                    {
                        // Already gone.
                    }
                }
            }
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A process still writing; the temp directory is reclaimed later.
        }
    }
}

/// <summary>A fake <c>/sys/bus/pci/devices</c>: two H100 GPUs (one vfio-bound), two NVSwitches, an NVIDIA audio function and an Intel NIC.</summary>
internal static class FakeSysfs
{
    public const string Gpu1 = "18:00.0";
    public const string Gpu2 = "2a:00.0";
    public const string Switch1 = "05:00.0";
    public const string Switch2 = "06:00.0";

    public static void Write(string sysfs)
    {
        var devices = Directory.CreateDirectory(Path.Combine(sysfs, "bus", "pci", "devices")).FullName;
        var groups = Directory.CreateDirectory(Path.Combine(sysfs, "kernel", "iommu_groups")).FullName;
        var drivers = Directory.CreateDirectory(Path.Combine(sysfs, "bus", "pci", "drivers")).FullName;
        Device(devices, groups, drivers, "0000:18:00.0", "0x10de", "0x2330", "0x030200", "0xa1", iommu: "25", driver: "vfio-pci", numa: "0");
        Device(devices, groups, drivers, "0000:2a:00.0", "0x10de", "0x2330", "0x030200", "0xa1", iommu: "40", driver: "nvidia", numa: "1");
        Device(devices, groups, drivers, "0000:05:00.0", "0x10de", "0x22a3", "0x068000", "0xa1", iommu: "12", driver: "vfio-pci", numa: "0");
        Device(devices, groups, drivers, "0000:06:00.0", "0x10de", "0x22a3", "0x068000", "0xa1", iommu: "13", driver: null, numa: "0");
        Device(devices, groups, drivers, "0000:18:00.1", "0x10de", "0x22ba", "0x040300", "0xa1", iommu: "25", driver: null, numa: "0");
        Device(devices, groups, drivers, "0000:00:1f.6", "0x8086", "0x15bc", "0x020000", "0x10", iommu: "7", driver: "e1000e", numa: "-1");
    }

    private static void Device(string devices, string groups, string drivers, string address, string vendor, string device, string cls, string revision, string iommu, string? driver, string numa)
    {
        var dir = Directory.CreateDirectory(Path.Combine(devices, address)).FullName;
        File.WriteAllText(Path.Combine(dir, "vendor"), vendor + "\n");
        File.WriteAllText(Path.Combine(dir, "device"), device + "\n");
        File.WriteAllText(Path.Combine(dir, "class"), cls + "\n");
        File.WriteAllText(Path.Combine(dir, "revision"), revision + "\n");
        File.WriteAllText(Path.Combine(dir, "numa_node"), numa + "\n");
        var group = Directory.CreateDirectory(Path.Combine(groups, iommu)).FullName;
        File.CreateSymbolicLink(Path.Combine(dir, "iommu_group"), group);
        if (driver is not null)
        {
            File.CreateSymbolicLink(Path.Combine(dir, "driver"), Directory.CreateDirectory(Path.Combine(drivers, driver)).FullName);
        }
    }
}
