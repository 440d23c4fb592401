using System.Text.Json.Serialization;

namespace PrivateMl.Vmm.Vms;

/// <summary>One host→guest forward of the manifest's <c>port_map</c> (dstack: address, protocol, from = host, to = guest).</summary>
public sealed record PortMap
{
    [JsonPropertyName("address")] public string Address { get; init; } = "127.0.0.1";

    [JsonPropertyName("protocol")] public string Protocol { get; init; } = "tcp";

    [JsonPropertyName("from")] public int From { get; init; }

    [JsonPropertyName("to")] public int To { get; init; }
}

public sealed record GpuSlot([property: JsonPropertyName("slot")] string Slot);

/// <summary>dstack's resolved GPU config: attach mode <c>listed</c> or <c>all</c> (PPCIe), GPUs and NVSwitch bridges.</summary>
public sealed record GpuAssignment
{
    [JsonPropertyName("attach_mode")] public string AttachMode { get; init; } = "listed";

    [JsonPropertyName("gpus")] public IReadOnlyList<GpuSlot> Gpus { get; init; } = [];

    [JsonPropertyName("bridges")] public IReadOnlyList<GpuSlot> Bridges { get; init; } = [];

    [JsonIgnore] public IEnumerable<string> AllSlots => Gpus.Concat(Bridges).Select(g => g.Slot);
}

/// <summary><c>vm-manifest.json</c>: dstack's <c>Manifest</c> fields (dstack.md §11.4) plus <c>no_tee</c> (our development mode).</summary>
public sealed record VmManifest
{
    [JsonPropertyName("id")] public required string Id { get; init; }

    [JsonPropertyName("name")] public required string Name { get; init; }

    [JsonPropertyName("app_id")] public required string AppId { get; init; }

    [JsonPropertyName("vcpu")] public int Vcpu { get; init; } = 1;

    /// <summary>MB.</summary>
    [JsonPropertyName("memory")] public int Memory { get; init; } = 1024;

    /// <summary>GB.</summary>
    [JsonPropertyName("disk_size")] public int DiskSize { get; init; } = 20;

    [JsonPropertyName("image")] public required string Image { get; init; }

    [JsonPropertyName("port_map")] public IReadOnlyList<PortMap> PortMap { get; init; } = [];

    [JsonPropertyName("created_at_ms")] public long CreatedAtMs { get; init; }

    [JsonPropertyName("hugepages")] public bool Hugepages { get; init; }

    [JsonPropertyName("pin_numa")] public bool PinNuma { get; init; }

    [JsonPropertyName("gpus")] public GpuAssignment? Gpus { get; init; }

    [JsonPropertyName("kms_urls")] public IReadOnlyList<string> KmsUrls { get; init; } = [];

    [JsonPropertyName("gateway_urls")] public IReadOnlyList<string> GatewayUrls { get; init; } = [];

    /// <summary>Development VM: plain QEMU (KVM or TCG), no TDX.</summary>
    [JsonPropertyName("no_tee")] public bool NoTee { get; init; }
}
