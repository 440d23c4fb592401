using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Env;

/// <summary>
/// What <c>dstack-util setup</c> does with the encrypted env at boot (dstack.md §7.3): read <c>.encrypted-env</c>,
/// open it with the app's <c>env_crypt_key</c>, keep the names the compose file's <c>allowed_envs</c> lists, and write
/// <c>.decrypted-env</c> (<c>KEY=VALUE</c> lines for systemd's <c>EnvironmentFile=</c> / docker compose) and
/// <c>.decrypted-env.json</c> next to it, mode 0600. Any failure aborts the boot, as in dstack.
/// </summary>
public static class EncryptedEnvSetup
{
    public const string EncryptedEnvFileName = ".encrypted-env";
    public const string DecryptedEnvFileName = ".decrypted-env";
    public const string DecryptedEnvJsonFileName = ".decrypted-env.json";

    /// <summary>
    /// Decrypts <paramref name="encryptedEnvPath"/> and writes the two output files into
    /// <paramref name="outputDirectory"/>. Returns null (and removes stale outputs) when the file is absent or empty,
    /// which is how dstack's VMM says "no encrypted env". The file holds the raw blob or its hex.
    /// </summary>
    /// <exception cref="AttestationException">The blob or its content is malformed, or does not decrypt with this key.</exception>
    /// <exception cref="InvalidOperationException">There is an encrypted env but the key provider gave no env key.</exception>
    public static EnvParseResult? Run(string encryptedEnvPath, string outputDirectory, ReadOnlySpan<byte> envCryptKey, ReadOnlySpan<byte> appCompose)
    {
        ArgumentException.ThrowIfNullOrEmpty(encryptedEnvPath);
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        var blob = ReadBlob(encryptedEnvPath);
        var textPath = Path.Combine(outputDirectory, DecryptedEnvFileName);
        var jsonPath = Path.Combine(outputDirectory, DecryptedEnvJsonFileName);
        if (blob is null)
        {
            File.Delete(textPath);
            File.Delete(jsonPath);
            return null;
        }

        if (envCryptKey.IsEmpty)
        {
            throw new InvalidOperationException($"{encryptedEnvPath} holds an encrypted env, but the key provider gave no env key to open it");
        }

        var plaintext = EncryptedEnv.Decrypt(blob, envCryptKey);
        try
        {
            var result = EnvVariables.Parse(plaintext, AllowedEnvs(appCompose));
            Directory.CreateDirectory(outputDirectory);
            WritePrivate(textPath, Encoding.UTF8.GetBytes(EnvVariables.RenderDotEnv(result.Variables)));
            WritePrivate(jsonPath, EnvVariables.RenderJson(result.Variables));
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>
    /// The compose file's <c>allowed_envs</c> (empty when absent, so nothing passes, as in dstack).
    /// </summary>
    /// <exception cref="AttestationException"><c>allowed_envs</c> is present but not an array of strings.</exception>
    public static IReadOnlyCollection<string> AllowedEnvs(ReadOnlySpan<byte> appCompose)
    {
        try
        {
            using var document = JsonDocument.Parse(appCompose.ToArray());
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("allowed_envs", out var allowed)
                || allowed.ValueKind == JsonValueKind.Null)
            {
                return [];
            }

            if (allowed.ValueKind != JsonValueKind.Array)
            {
                throw new AttestationException(ErrorCode.EnvPayloadInvalid, "app-compose.json: allowed_envs is not an array");
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in allowed.EnumerateArray())
            {
                if (name.ValueKind != JsonValueKind.String)
                {
                    throw new AttestationException(ErrorCode.EnvPayloadInvalid, "app-compose.json: allowed_envs holds a non-string");
                }

                names.Add(name.GetString()!);
            }

            return names;
        }
        catch (JsonException)
        {
            // The compose hash is measured whatever the bytes are; a compose that is not JSON allows nothing.
            return [];
        }
    }

    /// <summary>The blob in a file (raw, or hex with optional <c>0x</c> and surrounding whitespace); null when absent or empty.</summary>
    /// <exception cref="AttestationException">The file is larger than a blob can be.</exception>
    public static byte[]? ReadBlob(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        using var stream = File.OpenRead(path);
        if (stream.Length > (EncryptedEnv.MaxBlobBytes * 2L) + 16)
        {
            throw new AttestationException(ErrorCode.EnvCiphertextMalformed, $"{path} is {stream.Length} bytes; an encrypted env is at most {EncryptedEnv.MaxBlobBytes}");
        }

        var content = new byte[stream.Length];
        stream.ReadExactly(content);
        if (content.Length == 0)
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(content).Trim();
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        var decoded = new byte[text.Length / 2];
        return text.Length % 2 == 0 && text.Length > 0 && !text.AsSpan().ContainsAnyExcept(HexDigits)
            && Convert.FromHexString(text, decoded, out _, out _) == OperationStatus.Done
            ? decoded
            : content;
    }

    private static readonly SearchValues<char> HexDigits = SearchValues.Create("0123456789abcdefABCDEF");

    private static void WritePrivate(string path, byte[] content)
    {
        var temporary = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(content);
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
            File.Delete(temporary);
        }
    }
}
