using System.Text.Json.Serialization;

namespace PrivateMl.Vmm.Hosting;

// The JSON of dstack-vmm's Vmm service (vmm_rpc.proto v0.5.5, dstack.md §11.2): proto field names, proto3 defaults for
// missing fields, bytes as lowercase hex (an optional 0x accepted on input). One extension: VmConfiguration.no_tee.

public sealed record PortMapping
{
    [JsonPropertyName("protocol")] public string Protocol { get; init; } = "";

    [JsonPropertyName("host_port")] public long HostPort { get; init; }

    [JsonPropertyName("vm_port")] public long VmPort { get; init; }

    [JsonPropertyName("host_address")] public string HostAddress { get; init; } = "";
}

public sealed record GpuSpec
{
    [JsonPropertyName("slot")] public string Slot { get; init; } = "";
}

public sealed record GpuConfig
{
    [JsonPropertyName("gpus")] public IReadOnlyList<GpuSpec> Gpus { get; init; } = [];

    [JsonPropertyName("attach_mode")] public string AttachMode { get; init; } = "";
}

public sealed record VmConfiguration
{
    [JsonPropertyName("name")] public string Name { get; init; } = "";

    [JsonPropertyName("image")] public string Image { get; init; } = "";

    [JsonPropertyName("compose_file")] public string ComposeFile { get; init; } = "";

    [JsonPropertyName("vcpu")] public long Vcpu { get; init; }

    [JsonPropertyName("memory")] public long Memory { get; init; }

    [JsonPropertyName("disk_size")] public long DiskSize { get; init; }

    [JsonPropertyName("ports")] public IReadOnlyList<PortMapping> Ports { get; init; } = [];

    /// <summary>Hex of the encrypted-env blob.</summary>
    [JsonPropertyName("encrypted_env")] public string EncryptedEnv { get; init; } = "";

    [JsonPropertyName("app_id")] public string? AppId { get; init; }

    [JsonPropertyName("user_config")] public string UserConfig { get; init; } = "";

    [JsonPropertyName("hugepages")] public bool Hugepages { get; init; }

    [JsonPropertyName("pin_numa")] public bool PinNuma { get; init; }

    [JsonPropertyName("gpus")] public GpuConfig? Gpus { get; init; }

    [JsonPropertyName("kms_urls")] public IReadOnlyList<string> KmsUrls { get; init; } = [];

    [JsonPropertyName("gateway_urls")] public IReadOnlyList<string> GatewayUrls { get; init; } = [];

    [JsonPropertyName("stopped")] public bool Stopped { get; init; }

    /// <summary>Ours: a development VM under plain QEMU (KVM or TCG) without TDX.</summary>
    [JsonPropertyName("no_tee")] public bool NoTee { get; init; }
}

public sealed record IdRequest
{
    [JsonPropertyName("id")] public string Id { get; init; } = "";
}

public sealed record UpgradeAppRequest
{
    [JsonPropertyName("id")] public string Id { get; init; } = "";

    [JsonPropertyName("compose_file")] public string ComposeFile { get; init; } = "";

    [JsonPropertyName("encrypted_env")] public string EncryptedEnv { get; init; } = "";

    [JsonPropertyName("user_config")] public string UserConfig { get; init; } = "";

    [JsonPropertyName("update_ports")] public bool UpdatePorts { get; init; }

    [JsonPropertyName("ports")] public IReadOnlyList<PortMapping> Ports { get; init; } = [];

    [JsonPropertyName("update_kms_urls")] public bool UpdateKmsUrls { get; init; }

    [JsonPropertyName("kms_urls")] public IReadOnlyList<string> KmsUrls { get; init; } = [];

    [JsonPropertyName("update_gateway_urls")] public bool UpdateGatewayUrls { get; init; }

    [JsonPropertyName("gateway_urls")] public IReadOnlyList<string> GatewayUrls { get; init; } = [];

    [JsonPropertyName("gpus")] public GpuConfig? Gpus { get; init; }

    [JsonPropertyName("vcpu")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? Vcpu { get; init; }

    [JsonPropertyName("memory")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? Memory { get; init; }

    [JsonPropertyName("disk_size")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? DiskSize { get; init; }

    [JsonPropertyName("image")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Image { get; init; }

    [JsonPropertyName("no_tee")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public bool? NoTee { get; init; }
}

/// <summary>A guest's report through the host API (dstack's GuestEvent).</summary>
public sealed record GuestEvent
{
    [JsonPropertyName("event")] public string Event { get; init; } = "";

    [JsonPropertyName("body")] public string Body { get; init; } = "";

    /// <summary>Milliseconds since the Unix epoch.</summary>
    [JsonPropertyName("timestamp")] public ulong Timestamp { get; init; }
}

public sealed record StatusRequest
{
    [JsonPropertyName("ids")] public IReadOnlyList<string> Ids { get; init; } = [];

    [JsonPropertyName("brief")] public bool Brief { get; init; }

    [JsonPropertyName("keyword")] public string Keyword { get; init; } = "";

    [JsonPropertyName("page")] public long Page { get; init; }

    [JsonPropertyName("page_size")] public long PageSize { get; init; }
}

public sealed record AppIdRequest
{
    [JsonPropertyName("app_id")] public string AppId { get; init; } = "";
}

public sealed record VmInfo
{
    [JsonPropertyName("id")] public required string Id { get; init; }

    [JsonPropertyName("name")] public required string Name { get; init; }

    /// <summary>running | exited | stopping (stop asked, qemu still running) | stopped.</summary>
    [JsonPropertyName("status")] public required string Status { get; init; }

    [JsonPropertyName("uptime")] public string Uptime { get; init; } = "";

    [JsonPropertyName("app_url")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? AppUrl { get; init; }

    [JsonPropertyName("app_id")] public required string AppId { get; init; }

    [JsonPropertyName("instance_id")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? InstanceId { get; init; }

    [JsonPropertyName("configuration")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public VmConfiguration? Configuration { get; init; }

    [JsonPropertyName("exited_at")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? ExitedAt { get; init; }

    [JsonPropertyName("boot_progress")] public string BootProgress { get; init; } = "";

    [JsonPropertyName("boot_error")] public string BootError { get; init; } = "";

    [JsonPropertyName("shutdown_progress")] public string ShutdownProgress { get; init; } = "";

    [JsonPropertyName("image_version")] public string ImageVersion { get; init; } = "";

    [JsonPropertyName("events")] public IReadOnlyList<GuestEvent> Events { get; init; } = [];
}

public sealed record StatusResponse
{
    [JsonPropertyName("vms")] public IReadOnlyList<VmInfo> Vms { get; init; } = [];

    [JsonPropertyName("port_mapping_enabled")] public bool PortMappingEnabled { get; init; }

    [JsonPropertyName("total")] public int Total { get; init; }
}

public sealed record GetInfoResponse
{
    [JsonPropertyName("found")] public bool Found { get; init; }

    [JsonPropertyName("info")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public VmInfo? Info { get; init; }
}

public sealed record ImageEntry
{
    [JsonPropertyName("name")] public required string Name { get; init; }

    [JsonPropertyName("description")] public required string Description { get; init; }

    [JsonPropertyName("version")] public required string Version { get; init; }

    [JsonPropertyName("is_dev")] public bool IsDev { get; init; }
}

public sealed record ImageListResponse
{
    [JsonPropertyName("images")] public IReadOnlyList<ImageEntry> Images { get; init; } = [];
}

/// <summary>dstack's GpuInfo plus ours: kind, iommu_group, driver, vfio.</summary>
public sealed record GpuInfo
{
    [JsonPropertyName("slot")] public required string Slot { get; init; }

    [JsonPropertyName("product_id")] public required string ProductId { get; init; }

    [JsonPropertyName("description")] public required string Description { get; init; }

    [JsonPropertyName("is_free")] public bool IsFree { get; init; }

    [JsonPropertyName("kind")] public string Kind { get; init; } = "gpu";

    [JsonPropertyName("iommu_group")] public string? IommuGroup { get; init; }

    [JsonPropertyName("driver")] public string? Driver { get; init; }

    [JsonPropertyName("vfio")] public bool Vfio { get; init; }
}

public sealed record ListGpusResponse
{
    [JsonPropertyName("gpus")] public IReadOnlyList<GpuInfo> Gpus { get; init; } = [];

    [JsonPropertyName("allow_attach_all")] public bool AllowAttachAll { get; init; }
}

public sealed record ResizeVmRequest
{
    [JsonPropertyName("id")] public string Id { get; init; } = "";

    [JsonPropertyName("vcpu")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? Vcpu { get; init; }

    [JsonPropertyName("memory")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? Memory { get; init; }

    [JsonPropertyName("disk_size")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public long? DiskSize { get; init; }

    [JsonPropertyName("image")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Image { get; init; }
}
