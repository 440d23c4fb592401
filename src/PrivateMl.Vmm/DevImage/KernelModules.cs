using System.Text;

namespace PrivateMl.Vmm.DevImage;

/// <summary>
/// Finds kernel modules in an unpacked <c>lib/modules/&lt;version&gt;</c> tree and orders them for <c>insmod</c>
/// (which, unlike modprobe, loads no dependencies): every module after the modules named in its <c>depends=</c>
/// modinfo string. Debian's 6.1 kernel builds virtio-net and 9p as modules (research/dev-vm.md).
/// </summary>
public static class KernelModules
{
    /// <summary>What the development guest needs: the virtio PCI transport, virtio-net, the 9p shared folder, and the ACPI power button as an input device (graceful stop).</summary>
    public static IReadOnlyList<string> DevGuestRoots { get; } = ["virtio_pci", "virtio_net", "9pnet_virtio", "9p", "button", "evdev"];

    private static readonly byte[] DependsKey = Encoding.ASCII.GetBytes("depends=");

    /// <summary>
    /// The modules to load, dependencies first, as paths relative to <paramref name="modulesDirectory"/>. Modules the
    /// kernel has built in (listed in <c>modules.builtin</c>) are left out. Throws <see cref="DevImageException"/>
    /// when a module is neither there nor built in, or is compressed (only plain <c>.ko</c> files can be insmod-ed by
    /// busybox here).
    /// </summary>
    public static IReadOnlyList<string> LoadOrder(string modulesDirectory, IEnumerable<string> roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        var index = new Dictionary<string, string>(StringComparer.Ordinal);
        var compressed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(modulesDirectory, "*.ko*", SearchOption.AllDirectories))
        {
            var fileName = Path.GetFileName(file);
            if (fileName.EndsWith(".ko", StringComparison.Ordinal))
            {
                index.TryAdd(Canonical(fileName[..^3]), Path.GetRelativePath(modulesDirectory, file));
            }
            else
            {
                compressed.Add(Canonical(fileName[..fileName.IndexOf(".ko", StringComparison.Ordinal)]));
            }
        }

        var builtinFile = Path.Combine(modulesDirectory, "modules.builtin");
        var builtin = File.Exists(builtinFile)
            ? File.ReadLines(builtinFile).Select(line => Canonical(Path.GetFileName(line.Trim()).Replace(".ko", "", StringComparison.Ordinal))).ToHashSet(StringComparer.Ordinal)
            : [];

        var order = new List<string>();
        var done = new HashSet<string>(StringComparer.Ordinal);
        var visiting = new HashSet<string>(StringComparer.Ordinal);

        void Visit(string name)
        {
            if (done.Contains(name) || builtin.Contains(name))
            {
                return;
            }

            if (!visiting.Add(name))
            {
                throw new DevImageException($"kernel modules depend on each other in a cycle through {name}");
            }

            if (!index.TryGetValue(name, out var relative))
            {
                throw new DevImageException(compressed.Contains(name)
                    ? $"kernel module {name} is only there compressed; this builder needs a kernel with plain .ko modules (Debian 12's)"
                    : $"kernel module {name} is neither in {modulesDirectory} nor built into the kernel");
            }

            foreach (var dependency in Depends(File.ReadAllBytes(Path.Combine(modulesDirectory, relative))))
            {
                Visit(dependency);
            }

            visiting.Remove(name);
            done.Add(name);
            order.Add(relative);
        }

        foreach (var root in roots)
        {
            Visit(Canonical(root));
        }

        return order;
    }

    /// <summary>The module names in the <c>depends=</c> string of a module image (empty when it has none).</summary>
    public static IReadOnlyList<string> Depends(ReadOnlySpan<byte> module)
    {
        var at = module.IndexOf(DependsKey);
        while (at > 0 && module[at - 1] != 0)
        {
            // Only a modinfo entry starts right after a NUL; keep looking past a "depends=" inside other text.
            var next = module[(at + 1)..].IndexOf(DependsKey);
            at = next < 0 ? -1 : at + 1 + next;
        }

        if (at < 0)
        {
            return [];
        }

        var value = module[(at + DependsKey.Length)..];
        var end = value.IndexOf((byte)0);
        var text = Encoding.ASCII.GetString(end < 0 ? value : value[..end]);
        return [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Canonical)];
    }

    private static string Canonical(string name) => name.Replace('-', '_');
}
