using System.Text;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevImage;

public sealed class KernelModulesTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("privateml-modules-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>A fake module: some ELF-ish bytes and a .modinfo-style NUL-separated depends= entry.</summary>
    private void Module(string relative, string depends)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [0x7f, .. "ELF"u8, 0, .. Encoding.ASCII.GetBytes("license=GPL\0depends=" + depends + "\0vermagic=6.1\0")]);
    }

    [Fact]
    public void Orders_modules_after_their_dependencies_as_research_dev_vm_lists_them()
    {
        Module("kernel/drivers/virtio/virtio_ring.ko", "");
        Module("kernel/drivers/virtio/virtio.ko", "virtio_ring");
        Module("kernel/drivers/virtio/virtio_pci_modern_dev.ko", "");
        Module("kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "");
        Module("kernel/drivers/virtio/virtio_pci.ko", "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio");
        Module("kernel/net/core/failover.ko", "");
        Module("kernel/drivers/net/net_failover.ko", "failover");
        Module("kernel/drivers/net/virtio_net.ko", "virtio_ring,virtio,net_failover");
        Module("kernel/net/9p/9pnet.ko", "");
        Module("kernel/net/9p/9pnet_virtio.ko", "virtio,9pnet,virtio_ring");
        Module("kernel/fs/netfs/netfs.ko", "");
        Module("kernel/fs/fscache/fscache.ko", "netfs");
        Module("kernel/fs/9p/9p.ko", "9pnet,fscache,netfs");
        Module("kernel/drivers/acpi/button.ko", "");
        Module("kernel/drivers/input/evdev.ko", "");

        var order = KernelModules.LoadOrder(_root, KernelModules.DevGuestRoots).Select(p => Path.GetFileNameWithoutExtension(p)).ToList();

        Assert.Equal(
            ["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_pci", "failover", "net_failover", "virtio_net", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p", "button", "evdev"],
            order);
    }

    [Fact]
    public void Leaves_out_built_in_modules_and_names_a_missing_one()
    {
        Module("kernel/fs/9p/9p.ko", "9pnet,fscache");
        File.WriteAllText(Path.Combine(_root, "modules.builtin"), "kernel/fs/fscache/fscache.ko\n");

        var e = Assert.Throws<DevImageException>(() => KernelModules.LoadOrder(_root, ["9p"]));
        Assert.Contains("9pnet", e.Message, StringComparison.Ordinal);

        Module("kernel/net/9p/9pnet.ko", "");
        Assert.Equal(["9pnet.ko", "9p.ko"], KernelModules.LoadOrder(_root, ["9p"]).Select(Path.GetFileName));
    }

    [Fact]
    public void Refuses_compressed_modules_and_cycles()
    {
        Directory.CreateDirectory(Path.Combine(_root, "kernel"));
        File.WriteAllBytes(Path.Combine(_root, "kernel", "virtio.ko.xz"), [1, 2, 3]);
        Assert.Contains("compressed", Assert.Throws<DevImageException>(() => KernelModules.LoadOrder(_root, ["virtio"])).Message, StringComparison.Ordinal);

        Module("kernel/a.ko", "b");
        Module("kernel/b.ko", "a");
        Assert.Contains("cycle", Assert.Throws<DevImageException>(() => KernelModules.LoadOrder(_root, ["a"])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reads_depends_only_from_a_modinfo_entry()
    {
        var bytes = Encoding.ASCII.GetBytes("xx depends=fake\0description=a\0depends=virtio,virtio-ring\0");
        Assert.Equal(["virtio", "virtio_ring"], KernelModules.Depends(bytes));
        Assert.Empty(KernelModules.Depends("nothing here"u8));
    }
}
