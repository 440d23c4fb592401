using System.Globalization;

namespace PrivateMl.Vmm.Gpus;

/// <summary>What an NVIDIA PCI function is to the VMM (dstack: "3D controller" = GPU, "Bridge" = NVSwitch).</summary>
public enum NvidiaDeviceKind
{
    Gpu,
    NvSwitch,
}

/// <summary>An NVIDIA GPU or NVSwitch found in sysfs.</summary>
/// <param name="Slot">lspci's slot form <c>BB:DD.F</c> (domain 0000 omitted, as dstack's slots are written), else <c>DDDD:BB:DD.F</c>.</param>
/// <param name="Address">The full sysfs name <c>DDDD:BB:DD.F</c>.</param>
/// <param name="ProductId"><c>10de:XXXX</c>.</param>
/// <param name="IommuGroup">The IOMMU group number, null when the IOMMU is off.</param>
/// <param name="Driver">The bound driver's name (<c>vfio-pci</c>, <c>nvidia</c>…), null when none.</param>
public sealed record NvidiaPciDevice(string Slot, string Address, NvidiaDeviceKind Kind, string ProductId, string Description, string? IommuGroup, string? Driver, int? NumaNode)
{
    /// <summary>Whether vfio-pci holds it (required for passthrough).</summary>
    public bool IsVfioBound => Driver == "vfio-pci";
}

/// <summary>
/// Lists NVIDIA GPUs (class 0x0302, 3D controller) and NVSwitches (class 0x0680, bridge) from
/// <c>&lt;sysfs&gt;/bus/pci/devices</c>: vendor, device, class, revision, <c>iommu_group</c> and <c>driver</c> links.
/// The sysfs root is a parameter so tests run against a fake tree.
/// </summary>
public sealed class SysfsPciScanner(string sysfsRoot = "/sys")
{
    public const string NvidiaVendor = "10de";

    // A few product names lspci would print (pci.ids), for the description; others print "Device XXXX" like lspci.
    private static readonly Dictionary<string, string> Names = new(StringComparer.Ordinal)
    {
        ["2330"] = "GH100 [H100 SXM5 80GB]",
        ["2331"] = "GH100 [H100 PCIe]",
        ["2335"] = "GH100 [H200 SXM 141GB]",
        ["2339"] = "GH100 [H20]",
        ["233b"] = "GH100 [H200 NVL]",
        ["2901"] = "GB100 [B200]",
        ["22a3"] = "GH100 [H100 NVSwitch]",
    };

    public string SysfsRoot { get; } = sysfsRoot;

    public IReadOnlyList<NvidiaPciDevice> Scan()
    {
        var devicesDir = Path.Combine(SysfsRoot, "bus", "pci", "devices");
        if (!Directory.Exists(devicesDir))
        {
            return [];
        }

        var found = new List<NvidiaPciDevice>();
        foreach (var dir in Directory.EnumerateFileSystemEntries(devicesDir).Order(StringComparer.Ordinal))
        {
            var vendor = ReadHex(dir, "vendor");
            if (vendor != NvidiaVendor)
            {
                continue;
            }

            var cls = ReadHex(dir, "class") ?? "";
            NvidiaDeviceKind kind;
            string className;
            if (cls.StartsWith("0302", StringComparison.Ordinal))
            {
                kind = NvidiaDeviceKind.Gpu;
                className = "3D controller";
            }
            else if (cls.StartsWith("0680", StringComparison.Ordinal))
            {
                kind = NvidiaDeviceKind.NvSwitch;
                className = "Bridge";
            }
            else
            {
                continue; // audio functions, USB controllers of the same card, VGA consoles
            }

            var address = Path.GetFileName(dir);
            var device = ReadHex(dir, "device") ?? "0000";
            var revision = ReadHex(dir, "revision");
            var name = Names.TryGetValue(device, out var n) ? n : $"Device {device}";
            var description = $"{className}: NVIDIA Corporation {name}" + (revision is null ? "" : $" (rev {revision[^2..]})");
            var numa = ReadText(dir, "numa_node") is { } numaText && int.TryParse(numaText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var node) && node >= 0 ? node : (int?)null;
            found.Add(new NvidiaPciDevice(ShortSlot(address), address, kind, $"{NvidiaVendor}:{device}", description, LinkName(dir, "iommu_group"), LinkName(dir, "driver"), numa));
        }

        return found;
    }

    /// <summary>The slot as dstack writes it: <c>0000:18:00.0</c> → <c>18:00.0</c>.</summary>
    public static string ShortSlot(string address) =>
        address.StartsWith("0000:", StringComparison.Ordinal) ? address[5..] : address;

    /// <summary>Finds a device by either slot form.</summary>
    public static NvidiaPciDevice? Find(IReadOnlyList<NvidiaPciDevice> devices, string slot) =>
        devices.FirstOrDefault(d => d.Slot.Equals(slot, StringComparison.OrdinalIgnoreCase) || d.Address.Equals(slot, StringComparison.OrdinalIgnoreCase));

    private static string? ReadText(string dir, string file)
    {
        var path = Path.Combine(dir, file);
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            using var stream = File.OpenRead(path);
            var buffer = new byte[64];
            var read = stream.Read(buffer);
            return System.Text.Encoding.ASCII.GetString(buffer, 0, read).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? ReadHex(string dir, string file)
    {
        var text = ReadText(dir, file);
        if (text is null)
        {
            return null;
        }

        var hex = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        return hex.Length > 0 && hex.All(char.IsAsciiHexDigit) ? hex.ToLowerInvariant() : null;
    }

    private static string? LinkName(string dir, string link)
    {
        var info = new FileInfo(Path.Combine(dir, link));
        var target = info.LinkTarget;
        return target is null ? null : Path.GetFileName(target.TrimEnd('/'));
    }
}
