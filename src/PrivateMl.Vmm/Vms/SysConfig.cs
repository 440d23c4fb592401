using System.Buffers;
using System.Text.Json;
using PrivateMl.Vmm.Images;

namespace PrivateMl.Vmm.Vms;

/// <summary>shared/.sys-config.json and its <c>vm_config</c> string (dstack.md §11.5).</summary>
public static class SysConfig
{
    /// <summary>
    /// <c>{"kms_urls","gateway_urls","pccs_url","docker_registry","host_api_url","vm_config"}</c>, compact. In a development
    /// VM, URLs on the host's loopback are rewritten to 10.0.2.2 (QEMU user-net's name for the host).
    /// </summary>
    public static byte[] Build(VmmOptions options, VmManifest manifest, VmImage image, string hostApiUrl)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(image);
        var kms = manifest.KmsUrls.Count > 0 ? manifest.KmsUrls : options.KmsUrls;
        var gateways = manifest.GatewayUrls.Count > 0 ? manifest.GatewayUrls : options.GatewayUrls;
        if (manifest.NoTee)
        {
            kms = kms.Select(GuestReachable).ToList();
            gateways = gateways.Select(GuestReachable).ToList();
        }

        return Write(w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("kms_urls");
            foreach (var u in kms)
            {
                w.WriteStringValue(u);
            }

            w.WriteEndArray();
            w.WriteStartArray("gateway_urls");
            foreach (var u in gateways)
            {
                w.WriteStringValue(u);
            }

            w.WriteEndArray();
            w.WriteString("pccs_url", options.PccsUrl);
            w.WriteString("docker_registry", options.DockerRegistry);
            w.WriteString("host_api_url", hostApiUrl);
            w.WriteString("vm_config", System.Text.Encoding.UTF8.GetString(VmConfig(manifest, image)));
            w.WriteEndObject();
        });
    }

    /// <summary>dstack-types <c>VmConfig</c> in serde field order.</summary>
    public static byte[] VmConfig(VmManifest manifest, VmImage image)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(image);
        var gpus = manifest.Gpus ?? new GpuAssignment();
        return Write(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("spec_version", 1);
            w.WriteString("os_image_hash", image.Digest is { } d && d.All(char.IsAsciiHexDigit) && d.Length % 2 == 0 ? d.ToLowerInvariant() : "");
            w.WriteNumber("cpu_count", manifest.Vcpu);
            w.WriteNumber("memory_size", (long)manifest.Memory * 1024 * 1024);
            w.WriteNumber("pci_hole64_size", 0);
            w.WriteBoolean("hugepages", manifest.Hugepages);
            w.WriteNumber("num_gpus", gpus.Gpus.Count);
            w.WriteNumber("num_nvswitches", gpus.Bridges.Count);
            w.WriteBoolean("hotplug_off", false);
            w.WriteString("image", manifest.Image);
            w.WriteEndObject();
        });
    }

    /// <summary>http://127.0.0.1:8000 → http://10.0.2.2:8000 (and localhost); other URLs unchanged.</summary>
    public static string GuestReachable(string url)
    {
        if (Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.IsLoopback || uri.Host == "localhost"))
        {
            return new UriBuilder(uri) { Host = "10.0.2.2" }.Uri.ToString().TrimEnd('/') + (url.EndsWith('/') ? "/" : "");
        }

        return url;
    }

    private static byte[] Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}
