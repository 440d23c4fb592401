using System.Buffers;
using System.Text.Json;
using NBitcoin.Secp256k1;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Client.Kms;

/// <summary>
/// The client's list of trusted KMS root keys (33-byte compressed secp256k1 public keys, what a KMS reports as
/// <c>GetMeta.k256_pubkey</c>), against which the signer of an app's env-encryption public key is checked. Kept as
/// dstack's vmm-cli.py keeps its <c>kms-whitelist.json</c>: <c>{"trusted_signers":["02…",…]}</c>. Default location
/// <c>$PRIVATEML_KMS_TRUST_FILE</c>, else <c>&lt;user config dir&gt;/privateml/kms-trusted-signers.json</c>.
/// </summary>
public sealed class TrustedKmsKeyStore
{
    public const string PathVariable = "PRIVATEML_KMS_TRUST_FILE";
    public const int MaxFileBytes = 1024 * 1024;
    public const int KeySize = 33;

    private static readonly SearchValues<char> HexDigits = SearchValues.Create("0123456789abcdefABCDEF");

    public TrustedKmsKeyStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
    }

    /// <summary>The JSON file (need not exist yet: an absent file trusts nothing).</summary>
    public string Path { get; }

    /// <summary>The default file: <see cref="PathVariable"/> when set, else under the user's config directory (<c>$XDG_CONFIG_HOME</c> or <c>~/.config</c>).</summary>
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } overridden
            ? overridden
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData, Environment.SpecialFolderOption.DoNotVerify), "privateml", "kms-trusted-signers.json");

    /// <summary>The trusted keys as lowercase hex (66 characters each), in file order.</summary>
    /// <exception cref="AttestationException">The file is not a trust list (<see cref="ErrorCode.MalformedInput"/>).</exception>
    public IReadOnlyList<string> List() => Read();

    /// <summary>The trusted keys as bytes.</summary>
    public IReadOnlyList<byte[]> Signers() => [.. Read().Select(Convert.FromHexString)];

    /// <summary>Adds a key; false when it was already trusted.</summary>
    /// <exception cref="ArgumentException">Not a compressed secp256k1 public key.</exception>
    public bool Add(string publicKey)
    {
        var key = Normalize(publicKey) ?? throw new ArgumentException($"'{publicKey}' is not a 33-byte compressed secp256k1 public key (66 hex characters, 02/03 prefix)", nameof(publicKey));
        var keys = Read().ToList();
        if (keys.Contains(key, StringComparer.Ordinal))
        {
            return false;
        }

        keys.Add(key);
        Write(keys);
        return true;
    }

    /// <summary>Removes a key; false when it was not trusted.</summary>
    public bool Remove(string publicKey)
    {
        var key = Normalize(publicKey) ?? StripPrefix(publicKey).ToLowerInvariant();
        var keys = Read().ToList();
        if (!keys.Remove(key))
        {
            return false;
        }

        Write(keys);
        return true;
    }

    /// <summary>Lowercase hex without <c>0x</c> when <paramref name="publicKey"/> is a valid compressed secp256k1 point; else null.</summary>
    public static string? Normalize(string? publicKey)
    {
        if (publicKey is null)
        {
            return null;
        }

        var hex = StripPrefix(publicKey.Trim());
        if (hex.Length != KeySize * 2 || hex.AsSpan().ContainsAnyExcept(HexDigits))
        {
            return null;
        }

        var bytes = Convert.FromHexString(hex);
        return bytes[0] is 0x02 or 0x03 && ECPubKey.TryCreate(bytes, Context.Instance, out var compressed, out _) && compressed
            ? Convert.ToHexStringLower(bytes)
            : null;
    }

    private static string StripPrefix(string text) =>
        text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;

    private List<string> Read()
    {
        if (!File.Exists(Path))
        {
            return [];
        }

        byte[] content;
        using (var stream = File.OpenRead(Path))
        {
            if (stream.Length > MaxFileBytes)
            {
                throw Malformed($"is over {MaxFileBytes} bytes");
            }

            content = new byte[stream.Length];
            stream.ReadExactly(content);
        }

        try
        {
            using var document = JsonDocument.Parse(content);
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("trusted_signers", out var signers)
                || signers.ValueKind != JsonValueKind.Array)
            {
                throw Malformed("has no \"trusted_signers\" array");
            }

            var keys = new List<string>();
            foreach (var signer in signers.EnumerateArray())
            {
                var key = signer.ValueKind == JsonValueKind.String ? Normalize(signer.GetString()) : null;
                if (key is null)
                {
                    throw Malformed($"lists {signer.GetRawText()}, which is not a compressed secp256k1 public key");
                }

                if (!keys.Contains(key, StringComparer.Ordinal))
                {
                    keys.Add(key);
                }
            }

            return keys;
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.MalformedInput, $"trusted KMS key file {Path} is not valid JSON: {e.Message}", e);
        }
    }

    private void Write(List<string> keys)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!;
        Directory.CreateDirectory(directory);
        var temporary = Path + ".tmp";
        using (var stream = File.Create(temporary))
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("trusted_signers");
            foreach (var key in keys)
            {
                writer.WriteStringValue(key);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        File.Move(temporary, Path, overwrite: true);
    }

    private AttestationException Malformed(string what) =>
        new(ErrorCode.MalformedInput, $"trusted KMS key file {Path} {what}");
}
