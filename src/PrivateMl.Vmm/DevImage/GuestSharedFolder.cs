using System.Security.Cryptography;
using System.Text.Json;
using PrivateMl.Vmm.Compose;

namespace PrivateMl.Vmm.DevImage;

/// <summary>A boot of the development guest stopped on bad input from the host; the message says which file and why.</summary>
public sealed class GuestBootException : Exception
{
    public GuestBootException()
    {
    }

    public GuestBootException(string message)
        : base(message)
    {
    }

    public GuestBootException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>What the guest took from the host's shared folder, after the checks dstack-util's setup makes.</summary>
public sealed record GuestSharedFiles
{
    /// <summary>The guest's private copy of the shared files (dstack: <c>/dstack/.host-shared</c>).</summary>
    public required string Directory { get; init; }

    /// <summary>app-compose.json exactly as the host wrote it (its SHA-256 is the compose hash).</summary>
    public required byte[] AppCompose { get; init; }

    public byte[] ComposeHash => SHA256.HashData(AppCompose);

    /// <summary>The app id: <c>.instance_info</c>'s when it names one (a KMS app after a compose upgrade), else the first 20 bytes of the compose hash.</summary>
    public byte[] AppId => InstanceAppId ?? ComposeHash[..20];

    /// <summary>app_id from <c>.instance_info</c>, or null.</summary>
    public byte[]? InstanceAppId { get; init; }

    public string AppName { get; init; } = "";

    /// <summary>kms_enabled, the "kms" feature, or key_provider "kms".</summary>
    public bool KmsEnabled { get; init; }

    /// <summary>allowed_envs of the compose: which decrypted variables are kept.</summary>
    public IReadOnlyList<string> AllowedEnvs { get; init; } = [];

    /// <summary>The <c>vm_config</c> string of .sys-config.json, or null.</summary>
    public string? VmConfig { get; init; }

    /// <summary>kms_urls of .sys-config.json.</summary>
    public IReadOnlyList<string> KmsUrls { get; init; } = [];

    /// <summary>instance_id_seed of .instance_info (20 bytes), or null when the host gave none.</summary>
    public byte[]? InstanceIdSeed { get; init; }

    /// <summary>The .encrypted-env blob, or null when there is none.</summary>
    public byte[]? EncryptedEnv { get; init; }
}

/// <summary>
/// Reads the 9p shared folder the way dstack-util's setup does (research/dstack.md §10.3, §8.3): each known file is
/// copied with a size cap and without following links into the guest's own directory, the compose must be a JSON
/// object, and without KMS an app id other than the compose hash's is refused ("App upgrade is not supported
/// without KMS").
/// </summary>
public static class GuestSharedFolder
{
    public const string AppComposeFile = "app-compose.json";
    public const string SysConfigFile = ".sys-config.json";
    public const string InstanceInfoFile = ".instance_info";
    public const string EncryptedEnvFile = ".encrypted-env";
    public const string UserConfigFile = ".user-config";

    /// <summary>The size caps dstack-util applies to the files it copies out of the share.</summary>
    public static IReadOnlyDictionary<string, int> Limits { get; } = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        [AppComposeFile] = 256 * 1024,
        [SysConfigFile] = 32 * 1024,
        [InstanceInfoFile] = 10 * 1024,
        [EncryptedEnvFile] = 256 * 1024,
        [UserConfigFile] = 1024 * 1024,
    };

    public static GuestSharedFiles CopyAndRead(string sharedDirectory, string destination)
    {
        if (!System.IO.Directory.Exists(sharedDirectory))
        {
            throw new GuestBootException($"the shared folder {sharedDirectory} is not there (was the 9p share '{DevGuestInit.SharedFolderTag}' mounted?)");
        }

        System.IO.Directory.CreateDirectory(destination);
        var copied = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (name, limit) in Limits)
        {
            var source = Path.Combine(sharedDirectory, name);
            var info = new FileInfo(source);
            if (info.LinkTarget is not null)
            {
                throw new GuestBootException($"{name} in the shared folder is a link; refusing to follow it");
            }

            if (!info.Exists)
            {
                continue;
            }

            if (info.Length > limit)
            {
                throw new GuestBootException($"{name} is {info.Length} bytes; the limit is {limit}");
            }

            var bytes = ReadBounded(source, limit, name);
            File.WriteAllBytes(Path.Combine(destination, name), bytes);
            copied[name] = bytes;
        }

        if (!copied.TryGetValue(AppComposeFile, out var compose))
        {
            throw new GuestBootException($"the shared folder has no {AppComposeFile}");
        }

        var files = ReadCompose(compose) with { Directory = destination };
        if (copied.TryGetValue(SysConfigFile, out var sysConfig))
        {
            files = ReadSysConfig(files, sysConfig);
        }

        if (copied.TryGetValue(InstanceInfoFile, out var instanceInfo))
        {
            files = ReadInstanceInfo(files, instanceInfo);
        }

        if (copied.TryGetValue(EncryptedEnvFile, out var env) && env.Length > 0)
        {
            files = files with { EncryptedEnv = env };
        }

        return files;
    }

    private static byte[] ReadBounded(string path, int limit, string name)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var buffer = new byte[limit + 1];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0)
        {
            total += read;
        }

        if (total > limit)
        {
            throw new GuestBootException($"{name} is larger than {limit} bytes");
        }

        return buffer[..total];
    }

    /// <summary>The compose with the VMM's own rules (<see cref="AppCompose"/>), its defects as boot errors.</summary>
    private static GuestSharedFiles ReadCompose(byte[] bytes)
    {
        AppCompose compose;
        try
        {
            compose = AppCompose.Parse(bytes);
        }
        catch (VmmException e)
        {
            throw new GuestBootException($"{AppComposeFile}: {e.Message}", e);
        }

        return new GuestSharedFiles
        {
            Directory = "",
            AppCompose = bytes,
            AppName = compose.Name,
            KmsEnabled = compose.KeyProvider == KeyProviderKind.Kms,
            AllowedEnvs = compose.AllowedEnvs,
        };
    }

    /// <summary>A host file that must be a JSON object; anything else stops the boot naming <paramref name="name"/>.</summary>
    private static JsonDocument ParseObject(byte[] bytes, string name)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new GuestBootException($"{name} is not valid JSON: {e.Message}", e);
        }

        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new GuestBootException($"{name} is not a JSON object");
        }

        return document;
    }

    private static GuestSharedFiles ReadSysConfig(GuestSharedFiles files, byte[] bytes)
    {
        using var document = ParseObject(bytes, SysConfigFile);
        var root = document.RootElement;
        var vmConfig = root.TryGetProperty("vm_config", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var kmsUrls = root.TryGetProperty("kms_urls", out var u) && u.ValueKind == JsonValueKind.Array
            ? u.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToArray()
            : [];
        return files with { VmConfig = vmConfig, KmsUrls = kmsUrls };
    }

    private static GuestSharedFiles ReadInstanceInfo(GuestSharedFiles files, byte[] bytes)
    {
        using var document = ParseObject(bytes, InstanceInfoFile);
        var root = document.RootElement;
        var appId = Hex(root, "app_id", 20);
        if (appId is { Length: > 0 } && !appId.AsSpan().SequenceEqual(files.ComposeHash.AsSpan(0, 20)) && !files.KmsEnabled)
        {
            throw new GuestBootException(
                $"App upgrade is not supported without KMS: {InstanceInfoFile} names app_id {Convert.ToHexStringLower(appId)}, the compose hash gives {Convert.ToHexStringLower(files.ComposeHash.AsSpan(0, 20))}");
        }

        var seed = Hex(root, "instance_id_seed", 20);
        return files with { InstanceIdSeed = seed is { Length: > 0 } ? seed : null, InstanceAppId = appId is { Length: > 0 } ? appId : null };
    }

    private static byte[]? Hex(JsonElement root, string name, int length)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var text = value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new GuestBootException($"{InstanceInfoFile}: {name} is not a string");
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        if (text.Length == 0)
        {
            return [];
        }

        if (text.Length != length * 2)
        {
            throw new GuestBootException($"{InstanceInfoFile}: {name} must be {length * 2} hex digits");
        }

        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException e)
        {
            throw new GuestBootException($"{InstanceInfoFile}: {name} is not hex", e);
        }
    }
}
