using System.Text.Json;

namespace PrivateMl.Vmm.Vms;

/// <summary>
/// A VM's directory <c>&lt;run_path&gt;/&lt;uuid&gt;/</c>, laid out as dstack-vmm lays it out (dstack.md §11.4, §11.5):
/// vm-manifest.json, vm-state.json, serial.log, stdout.log, stderr.log, qemu.pid, hda.img and the 9p folder shared/
/// (app-compose.json, .encrypted-env, .user-config, .instance_info, .sys-config.json).
/// </summary>
public sealed class VmWorkDir(string path)
{
    public const string AppComposeFile = "app-compose.json";
    public const string EncryptedEnvFile = ".encrypted-env";
    public const string UserConfigFile = ".user-config";
    public const string InstanceInfoFile = ".instance_info";
    public const string SysConfigFile = ".sys-config.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string Path { get; } = path;

    public string ManifestPath => System.IO.Path.Combine(Path, "vm-manifest.json");

    public string StatePath => System.IO.Path.Combine(Path, "vm-state.json");

    public string SharedDir => System.IO.Path.Combine(Path, "shared");

    public string SerialLog => System.IO.Path.Combine(Path, "serial.log");

    public string SerialPty => System.IO.Path.Combine(Path, "serial.pty");

    public string StdoutLog => System.IO.Path.Combine(Path, "stdout.log");

    public string StderrLog => System.IO.Path.Combine(Path, "stderr.log");

    public string PidFile => System.IO.Path.Combine(Path, "qemu.pid");

    public string QmpSocket => System.IO.Path.Combine(Path, "qmp.sock");

    public string HdaPath => System.IO.Path.Combine(Path, "hda.img");

    /// <summary>Ours, beside dstack's files: a graceful stop in progress (<see cref="StopRequest"/>), so a restarted service keeps its deadline.</summary>
    public string StoppingPath => System.IO.Path.Combine(Path, ".stopping");

    public string SharedFile(string name) => System.IO.Path.Combine(SharedDir, name);

    public VmManifest ReadManifest() =>
        JsonSerializer.Deserialize<VmManifest>(File.ReadAllBytes(ManifestPath))
        ?? throw new VmmException(VmmErrorCode.UnknownVm, $"{ManifestPath} is empty");

    public void WriteManifest(VmManifest manifest) => WriteAtomic(ManifestPath, JsonSerializer.SerializeToUtf8Bytes(manifest, Indented));

    /// <summary>vm-state.json <c>{"started":bool}</c>: whether the operator wants it running.</summary>
    public bool Started
    {
        get
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(StatePath));
                return doc.RootElement.TryGetProperty("started", out var s) && s.ValueKind == JsonValueKind.True;
            }
            catch (Exception e) when (e is IOException or JsonException)
            {
                return false;
            }
        }

        set => WriteAtomic(StatePath, JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, bool> { ["started"] = value }));
    }

    /// <summary>The graceful stop in progress, or null (none, or an unreadable marker).</summary>
    public StopRequest? Stopping
    {
        get
        {
            try
            {
                return File.Exists(StoppingPath) ? JsonSerializer.Deserialize<StopRequest>(File.ReadAllBytes(StoppingPath)) : null;
            }
            catch (Exception e) when (e is IOException or JsonException)
            {
                return null;
            }
        }

        set
        {
            if (value is null)
            {
                File.Delete(StoppingPath);
            }
            else
            {
                WriteAtomic(StoppingPath, JsonSerializer.SerializeToUtf8Bytes(value));
            }
        }
    }

    /// <summary>The app_id recorded in shared/.instance_info, or null.</summary>
    public string? InstanceAppId()
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(SharedFile(InstanceInfoFile)));
            return doc.RootElement.TryGetProperty("app_id", out var id) ? id.GetString() : null;
        }
        catch (Exception e) when (e is IOException or JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>The instance_id the guest reported back (Notify instance.info), or null.</summary>
    public string? InstanceId()
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(SharedFile(InstanceInfoFile)));
            return doc.RootElement.TryGetProperty("instance_id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    internal static void WriteAtomic(string path, ReadOnlySpan<byte> bytes)
    {
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes.ToArray());
        File.Move(temp, path, overwrite: true);
    }
}

/// <summary>A graceful stop: when it was asked for, when qemu is killed if the guest has not powered off, and how the guest was asked.</summary>
public sealed record StopRequest
{
    [System.Text.Json.Serialization.JsonPropertyName("requested_at_ms")] public long RequestedAtMs { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("deadline_ms")] public long DeadlineMs { get; init; }

    /// <summary><c>acpi</c> (QMP system_powerdown sent) or <c>guest</c> (the guest announced it is powering off).</summary>
    [System.Text.Json.Serialization.JsonPropertyName("via")] public string Via { get; init; } = "acpi";
}
