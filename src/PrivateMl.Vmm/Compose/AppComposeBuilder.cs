using System.Text;

namespace PrivateMl.Vmm.Compose;

/// <summary>The inputs of <c>vmm-cli.py compose</c> (dstack.md §11.3), already read from their files.</summary>
public sealed record AppComposeOptions
{
    public required string Name { get; init; }

    /// <summary>The docker-compose YAML text, verbatim.</summary>
    public required string DockerComposeFile { get; init; }

    public string? PreLaunchScript { get; init; }

    public bool Kms { get; init; }

    public bool Gateway { get; init; }

    public bool LocalKeyProvider { get; init; }

    public string? KeyProviderId { get; init; }

    public bool PublicLogs { get; init; }

    public bool PublicSysinfo { get; init; }

    /// <summary>Keys of the --env-file, in file order (vmm-cli: <c>allowed_envs</c>).</summary>
    public IReadOnlyList<string> AllowedEnvs { get; init; } = [];

    public bool NoInstanceId { get; init; }

    public bool SecureTime { get; init; }

    /// <summary><c>--swap</c> in MB (null: not given; 0: disabled, key omitted).</summary>
    public long? SwapMegabytes { get; init; }
}

/// <summary>Builds app-compose.json exactly as dstack's tools do, so the compose hash matches theirs.</summary>
public static class AppComposeBuilder
{
    /// <summary>UTF-8 decoding that refuses invalid bytes (Python's <c>.decode('utf-8')</c>), keeping a BOM as U+FEFF.</summary>
    internal static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>vmm-cli.py <c>compose</c>: indent-4 JSON, keys in vmm-cli's insertion order (dstack.md §8.2).</summary>
    public static byte[] VmmCli(AppComposeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var obj = new List<KeyValuePair<string, object?>>
        {
            new("manifest_version", 2),
            new("name", options.Name),
            new("runner", "docker-compose"),
            new("docker_compose_file", options.DockerComposeFile),
            new("kms_enabled", options.Kms),
            new("gateway_enabled", options.Gateway),
            new("local_key_provider_enabled", options.LocalKeyProvider),
            new("key_provider_id", options.KeyProviderId ?? ""),
            new("public_logs", options.PublicLogs),
            new("public_sysinfo", options.PublicSysinfo),
            new("allowed_envs", options.AllowedEnvs),
            new("no_instance_id", options.NoInstanceId),
            new("secure_time", options.SecureTime),
        };
        if (!string.IsNullOrEmpty(options.PreLaunchScript))
        {
            obj.Add(new("pre_launch_script", options.PreLaunchScript));
        }

        if (options.SwapMegabytes is { } swap && swap > 0)
        {
            obj.Add(new("swap_size", checked(swap * 1024 * 1024)));
        }

        return Encoding.UTF8.GetBytes(PythonJson.Dumps(obj));
    }

    /// <summary>
    /// pml <c>dstack.py new</c>: manifest_version 1, fixed name "example" and version "1.0.0" (dstack.md §11.7).
    /// </summary>
    public static byte[] DstackPy(string dockerComposeFile, bool localKeyProvider)
    {
        var obj = new List<KeyValuePair<string, object?>>
        {
            new("manifest_version", 1),
            new("name", "example"),
            new("version", "1.0.0"),
            new("features", Array.Empty<string>()),
            new("runner", "docker-compose"),
            new("docker_compose_file", dockerComposeFile),
            new("local_key_provider_enabled", localKeyProvider),
            new("secure_time", false),
        };
        return Encoding.UTF8.GetBytes(PythonJson.Dumps(obj));
    }

    /// <summary>Reads a text input file the way vmm-cli does (<c>open(f, 'rb').read().decode('utf-8')</c>), bounded.</summary>
    public static string ReadUtf8File(string path, long maxBytes = AppCompose.MaxBytes)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw VmmException.Invalid($"file not found: {path}");
        }

        if (info.Length > maxBytes)
        {
            throw VmmException.Invalid($"{path} is {info.Length} bytes, more than the {maxBytes} allowed");
        }

        try
        {
            return StrictUtf8.GetString(File.ReadAllBytes(path));
        }
        catch (DecoderFallbackException)
        {
            throw VmmException.Invalid($"{path} is not valid UTF-8");
        }
    }
}
