using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Vmm;

/// <summary>
/// The service's configuration (<c>privateml vmm serve --config FILE</c>, JSON, snake_case keys as dstack's vmm.toml
/// names them). Every path has a default under <c>~/.privateml/vmm</c>.
/// </summary>
public sealed record VmmOptions
{
    private static readonly JsonSerializerOptions Strict = new() { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };

    private static readonly string Home = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".privateml", "vmm");

    /// <summary>Listener, e.g. <c>http://127.0.0.1:8080</c> (vmm-cli's default URL).</summary>
    [JsonPropertyName("address")] public string Address { get; init; } = "http://127.0.0.1:8080";

    [JsonPropertyName("image_path")] public string ImagePath { get; init; } = Path.Combine(Home, "images");

    [JsonPropertyName("run_path")] public string RunPath { get; init; } = Path.Combine(Home, "vm");

    /// <summary>Default KMS URLs for VMs deployed without <c>--kms-url</c>; GetAppEnvEncryptPubKey is forwarded to each in order until one answers.</summary>
    [JsonPropertyName("kms_urls")] public IReadOnlyList<string> KmsUrls { get; init; } = [];

    [JsonPropertyName("gateway_urls")] public IReadOnlyList<string> GatewayUrls { get; init; } = [];

    [JsonPropertyName("pccs_url")] public string PccsUrl { get; init; } = "";

    [JsonPropertyName("docker_registry")] public string DockerRegistry { get; init; } = "";

    /// <summary>The emulator; null = <c>qemu-system-x86_64</c> on PATH.</summary>
    [JsonPropertyName("qemu_path")] public string? QemuPath { get; init; }

    [JsonPropertyName("qemu_img_path")] public string QemuImgPath { get; init; } = "qemu-img";

    [JsonPropertyName("sysfs_root")] public string SysfsRoot { get; init; } = "/sys";

    [JsonPropertyName("proc_root")] public string ProcRoot { get; init; } = "/proc";

    [JsonPropertyName("host_api_port")] public int HostApiPort { get; init; } = 10000;

    [JsonPropertyName("cid_start")] public int CidStart { get; init; } = 1000;

    [JsonPropertyName("port_mapping_enabled")] public bool PortMappingEnabled { get; init; } = true;

    [JsonPropertyName("gpu_enabled")] public bool GpuEnabled { get; init; } = true;

    [JsonPropertyName("allow_attach_all")] public bool AllowAttachAll { get; init; } = true;

    /// <summary>
    /// <c>-qmp unix:&lt;wd&gt;/qmp.sock</c> on TDX VMs (development VMs always get it). On by default here (dstack's default is
    /// off because its ShutdownVm asks the guest agent): graceful <c>stop</c> sends the ACPI power button through it.
    /// </summary>
    [JsonPropertyName("qmp_socket")] public bool QmpSocket { get; init; } = true;

    /// <summary>How long a graceful stop (ShutdownVm) waits for the guest to power off before qemu is killed.</summary>
    [JsonPropertyName("shutdown_timeout_secs")] public int ShutdownTimeoutSeconds { get; init; } = 30;

    /// <summary>dstack-vmm's <c>[auth]</c>: when enabled, every request except the guests' host API needs one of the tokens.</summary>
    [JsonPropertyName("auth")] public VmmAuthOptions Auth { get; init; } = new();

    [JsonPropertyName("use_mrconfigid")] public bool UseMrConfigId { get; init; } = true;

    /// <summary>Every VM is a development VM (as if CreateVm said no_tee), so unmodified vmm-cli.py can deploy on a host without TDX.</summary>
    [JsonPropertyName("no_tee")] public bool NoTee { get; init; }

    [JsonPropertyName("max_cvm_number")] public int MaxCvmNumber { get; init; } = 1000;

    /// <summary>Reads a config file; unknown keys are refused so a typo does not silently fall back to a default.</summary>
    public static VmmOptions Load(string path)
    {
        try
        {
            var options = JsonSerializer.Deserialize<VmmOptions>(File.ReadAllBytes(path), Strict)
                ?? throw VmmException.Invalid($"{path} is empty");
            if (options.ShutdownTimeoutSeconds is < 1 or > 86_400)
            {
                throw VmmException.Invalid($"{path}: shutdown_timeout_secs must be 1..86400");
            }

            return options;
        }
        catch (JsonException e)
        {
            throw VmmException.Invalid($"{path}: {e.Message}");
        }
        catch (IOException e)
        {
            throw VmmException.Invalid($"{path}: {e.Message}");
        }
    }
}

/// <summary>dstack-vmm's <c>[auth]</c> section: <c>enabled</c> and the accepted API <c>tokens</c>.</summary>
public sealed record VmmAuthOptions
{
    [JsonPropertyName("enabled")] public bool Enabled { get; init; }

    [JsonPropertyName("tokens")] public IReadOnlyList<string> Tokens { get; init; } = [];

    /// <summary>Ours: listen beyond loopback without auth anyway (dstack only warns; we refuse unless this is set).</summary>
    [JsonPropertyName("allow_public_without_auth")] public bool AllowPublicWithoutAuth { get; init; }
}
