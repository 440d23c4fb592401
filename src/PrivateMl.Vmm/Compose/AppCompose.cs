using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Org.BouncyCastle.Crypto.Digests;

namespace PrivateMl.Vmm.Compose;

/// <summary>dstack's key provider kinds, with the byte mr_config_id V2 hashes (dstack.md §8.5).</summary>
public enum KeyProviderKind
{
    None = 0,
    Local = 1,
    Kms = 2,
}

/// <summary>
/// The fields of an app-compose.json the VMM needs, parsed with dstack's rules (dstack.md §8.1), and the identities
/// derived from its exact bytes: compose hash, default app_id, mr_config_id.
/// </summary>
public sealed class AppCompose
{
    /// <summary>Upper bound on an app-compose.json (dstack's guest copies it with a size cap; 4 MiB is generous).</summary>
    public const int MaxBytes = 4 * 1024 * 1024;

    private AppCompose(byte[] bytes, string name, string runner, KeyProviderKind keyProvider, byte[] keyProviderId, IReadOnlyList<string> allowedEnvs)
    {
        Bytes = bytes;
        Name = name;
        Runner = runner;
        KeyProvider = keyProvider;
        KeyProviderId = keyProviderId;
        AllowedEnvs = allowedEnvs;
        ComposeHash = SHA256.HashData(bytes);
    }

    /// <summary>The exact bytes (what is hashed and written to the shared folder).</summary>
    public byte[] Bytes { get; }

    public string Name { get; }

    public string Runner { get; }

    public KeyProviderKind KeyProvider { get; }

    public byte[] KeyProviderId { get; }

    public IReadOnlyList<string> AllowedEnvs { get; }

    /// <summary>SHA-256 of <see cref="Bytes"/>.</summary>
    public byte[] ComposeHash { get; }

    /// <summary>The default app_id: the first 20 bytes of the compose hash (VMM <c>app_id_of</c>).</summary>
    public byte[] DefaultAppId => ComposeHash[..20];

    public static AppCompose Parse(string composeFile) => Parse(Encoding.UTF8.GetBytes(composeFile ?? throw VmmException.Invalid("compose_file is missing")));

    /// <summary>Parses and validates; any defect is a <see cref="VmmErrorCode.InvalidCompose"/>.</summary>
    public static AppCompose Parse(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length == 0)
        {
            throw Bad("the compose file is empty");
        }

        if (bytes.Length > MaxBytes)
        {
            throw Bad($"the compose file is {bytes.Length} bytes, more than {MaxBytes}");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw Bad($"not JSON: {e.Message}");
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Bad("the top level must be a JSON object");
            }

            RequireManifestVersion(root);
            var name = RequireString(root, "name");
            var runner = RequireString(root, "runner");
            foreach (var flag in new[] { "kms_enabled", "gateway_enabled", "tproxy_enabled", "local_key_provider_enabled", "public_logs", "public_sysinfo", "public_tcbinfo", "no_instance_id", "secure_time" })
            {
                if (root.TryGetProperty(flag, out var v) && v.ValueKind is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
                {
                    throw Bad($"'{flag}' must be a boolean");
                }
            }

            var features = StringList(root, "features");
            var allowedEnvs = StringList(root, "allowed_envs");
            var keyProviderId = Array.Empty<byte>();
            if (root.TryGetProperty("key_provider_id", out var kpid) && kpid.ValueKind != JsonValueKind.Null)
            {
                if (kpid.ValueKind != JsonValueKind.String)
                {
                    throw Bad("'key_provider_id' must be a hex string");
                }

                keyProviderId = Hex.Decode(kpid.GetString()!, "key_provider_id", VmmErrorCode.InvalidCompose);
            }

            var kind = (Flag(root, "kms_enabled") || features.Contains("kms"))
                ? KeyProviderKind.Kms
                : Flag(root, "local_key_provider_enabled") ? KeyProviderKind.Local : KeyProviderKind.None;
            if (root.TryGetProperty("key_provider", out var kp) && kp.ValueKind != JsonValueKind.Null)
            {
                kind = kp.ValueKind == JsonValueKind.String ? kp.GetString() switch
                {
                    "none" => KeyProviderKind.None,
                    "kms" => KeyProviderKind.Kms,
                    "local" => KeyProviderKind.Local,
                    var other => throw Bad($"unknown key_provider '{other}' (none, kms or local)"),
                } : throw Bad("'key_provider' must be a string");
            }

            return new AppCompose(bytes, name, runner, kind, keyProviderId, allowedEnvs);
        }
    }

    /// <summary>
    /// The 48-byte MRCONFIGID dstack-vmm passes to QEMU (dstack.md §8.5): V1 <c>01 ‖ compose_hash ‖ 0×15</c> without a
    /// key_provider_id, else V2 <c>02 ‖ Keccak-256(compose_hash ‖ app_id ‖ kind ‖ key_provider_id) ‖ 0×15</c>.
    /// </summary>
    public byte[] MrConfigId(ReadOnlySpan<byte> appId) => ComputeMrConfigId(ComposeHash, appId, KeyProvider, KeyProviderId);

    /// <summary>mr_config_id from its parts (dstack.md §8.5); <paramref name="appId"/> is only used for V2.</summary>
    public static byte[] ComputeMrConfigId(ReadOnlySpan<byte> composeHash, ReadOnlySpan<byte> appId, KeyProviderKind keyProvider, ReadOnlySpan<byte> keyProviderId)
    {
        if (composeHash.Length != 32)
        {
            throw VmmException.Invalid("compose hash must be 32 bytes");
        }

        var id = new byte[48];
        if (keyProviderId.IsEmpty)
        {
            id[0] = 1;
            composeHash.CopyTo(id.AsSpan(1));
            return id;
        }

        if (appId.Length != 20)
        {
            throw VmmException.Invalid("app_id must be 20 bytes");
        }

        var keccak = new KeccakDigest(256);
        keccak.BlockUpdate(composeHash);
        keccak.BlockUpdate(appId);
        keccak.Update((byte)keyProvider);
        keccak.BlockUpdate(keyProviderId);
        id[0] = 2;
        keccak.DoFinal(id, 1);
        return id;
    }

    private static void RequireManifestVersion(JsonElement root)
    {
        if (!root.TryGetProperty("manifest_version", out var v))
        {
            throw Bad("'manifest_version' is missing");
        }

        var ok = v.ValueKind switch
        {
            JsonValueKind.Number => v.TryGetUInt32(out _),
            JsonValueKind.String => uint.TryParse(v.GetString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _),
            _ => false,
        };
        if (!ok)
        {
            throw Bad("'manifest_version' must be an unsigned integer");
        }
    }

    private static string RequireString(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw Bad($"'{name}' is missing or not a string");

    private static bool Flag(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    private static List<string> StringList(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
        {
            throw Bad($"'{name}' must be a list of strings");
        }

        return v.EnumerateArray().Select(e => e.GetString()!).ToList();
    }

    private static VmmException Bad(string message) => new(VmmErrorCode.InvalidCompose, "invalid app compose: " + message);
}

/// <summary>Hex as dstack's JSON takes it: optional <c>0x</c>, even length, either case.</summary>
public static class Hex
{
    public static byte[] Decode(string text, string what, VmmErrorCode code = VmmErrorCode.InvalidArgument)
    {
        var s = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        if (s.Length % 2 != 0 || s.Any(c => !char.IsAsciiHexDigit(c)))
        {
            throw new VmmException(code, $"{what} is not hex");
        }

        return Convert.FromHexString(s);
    }
}
