using System.Security.Cryptography;
using NSec.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Env;

/// <summary>
/// dstack's encrypted environment blob (dstack.md §7.2, §7.3), byte-compatible with vmm-cli.py, the npm
/// <c>encryptEnvVars</c> and <c>dstack-util</c>: <c>ephemeral X25519 public key (32) ‖ IV (12) ‖ AES-256-GCM
/// ciphertext ‖ tag (16)</c>, where the AES key is the raw X25519 shared secret (no KDF) and there is no AAD.
/// The recipient key is the app's <c>env_crypt_key</c>, used unclamped as an X25519 private key.
/// </summary>
public static class EncryptedEnv
{
    public const int KeySize = 32;
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int HeaderSize = KeySize + NonceSize;
    public const int Overhead = HeaderSize + TagSize;

    /// <summary>Largest blob accepted: dstack's payload limit (1 MiB of keys and values) plus room for JSON framing.</summary>
    public const int MaxBlobBytes = 4 * 1024 * 1024;

    private static readonly KeyAgreementAlgorithm X25519 = KeyAgreementAlgorithm.X25519;

    /// <summary>X25519 public key of an <c>env_crypt_key</c> (what the KMS serves in <c>GetAppEnvEncryptPubKey</c>).</summary>
    /// <exception cref="ArgumentException">The key is not 32 bytes.</exception>
    public static byte[] PublicKeyOf(ReadOnlySpan<byte> envCryptKey)
    {
        using var key = ImportPrivate(envCryptKey, nameof(envCryptKey));
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>
    /// Encrypts <paramref name="plaintext"/> to <paramref name="recipientPublicKey"/> with a fresh ephemeral key and IV
    /// drawn from <paramref name="random"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The public key is not 32 bytes, or is a low-order point (no shared secret).</exception>
    public static byte[] Encrypt(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> recipientPublicKey, RandomNumberGenerator random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (plaintext.Length > MaxBlobBytes - Overhead)
        {
            throw new ArgumentException($"plaintext over {MaxBlobBytes - Overhead} bytes", nameof(plaintext));
        }

        Span<byte> ephemeral = stackalloc byte[KeySize];
        Span<byte> nonce = stackalloc byte[NonceSize];
        random.GetBytes(ephemeral);
        random.GetBytes(nonce);
        try
        {
            return Encrypt(plaintext, recipientPublicKey, ephemeral, nonce);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ephemeral);
        }
    }

    /// <summary>Encryption with a caller-chosen ephemeral scalar and IV (test vectors only; never reuse either).</summary>
    internal static byte[] Encrypt(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> ephemeralPrivateKey, ReadOnlySpan<byte> nonce)
    {
        if (nonce.Length != NonceSize)
        {
            throw new ArgumentException($"the IV must be {NonceSize} bytes", nameof(nonce));
        }

        if (!PublicKey.TryImport(X25519, recipientPublicKey, KeyBlobFormat.RawPublicKey, out var recipient) || recipient is null)
        {
            throw new ArgumentException($"the recipient public key must be {KeySize} bytes", nameof(recipientPublicKey));
        }

        using var ephemeral = ImportPrivate(ephemeralPrivateKey, nameof(ephemeralPrivateKey));
        var shared = Agree(ephemeral, recipient)
            ?? throw new ArgumentException("the recipient public key is a low-order point", nameof(recipientPublicKey));
        try
        {
            var blob = new byte[Overhead + plaintext.Length];
            ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey).CopyTo(blob, 0);
            nonce.CopyTo(blob.AsSpan(KeySize));
            using var aes = new AesGcm(shared, TagSize);
            aes.Encrypt(nonce, plaintext, blob.AsSpan(HeaderSize, plaintext.Length), blob.AsSpan(HeaderSize + plaintext.Length));
            return blob;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    /// <summary>
    /// Opens a blob with the app's <c>env_crypt_key</c>. Untrusted input: a short, oversized or forged blob is an
    /// <see cref="AttestationException"/> (<see cref="ErrorCode.EnvCiphertextMalformed"/> or
    /// <see cref="ErrorCode.EnvDecryptionFailed"/>), never another exception, and no plaintext comes out.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="envCryptKey"/> is not 32 bytes (a caller bug).</exception>
    public static byte[] Decrypt(ReadOnlySpan<byte> blob, ReadOnlySpan<byte> envCryptKey)
    {
        using var key = ImportPrivate(envCryptKey, nameof(envCryptKey));
        if (blob.Length < Overhead)
        {
            throw new AttestationException(ErrorCode.EnvCiphertextMalformed, $"encrypted env is {blob.Length} bytes; at least {Overhead} are needed (key, IV, tag)");
        }

        if (blob.Length > MaxBlobBytes)
        {
            throw new AttestationException(ErrorCode.EnvCiphertextMalformed, $"encrypted env is {blob.Length} bytes; at most {MaxBlobBytes} are accepted");
        }

        if (!PublicKey.TryImport(X25519, blob[..KeySize], KeyBlobFormat.RawPublicKey, out var ephemeral) || ephemeral is null)
        {
            throw new AttestationException(ErrorCode.EnvCiphertextMalformed, "encrypted env has an invalid ephemeral public key");
        }

        var shared = Agree(key, ephemeral)
            ?? throw new AttestationException(ErrorCode.EnvDecryptionFailed, "encrypted env has a low-order ephemeral public key");
        var ciphertextLength = blob.Length - Overhead;
        var plaintext = new byte[ciphertextLength];
        try
        {
            using var aes = new AesGcm(shared, TagSize);
            aes.Decrypt(blob.Slice(KeySize, NonceSize), blob.Slice(HeaderSize, ciphertextLength), blob[^TagSize..], plaintext);
            return plaintext;
        }
        catch (CryptographicException e)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw new AttestationException(ErrorCode.EnvDecryptionFailed, "encrypted env does not decrypt with this app's env key (wrong key, or the blob was altered)", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    private static Key ImportPrivate(ReadOnlySpan<byte> privateKey, string parameterName)
    {
        if (privateKey.Length != KeySize)
        {
            throw new ArgumentException($"an X25519 private key is {KeySize} bytes", parameterName);
        }

        return Key.Import(X25519, privateKey, KeyBlobFormat.RawPrivateKey);
    }

    /// <summary>The raw X25519 output; null when it is all zeros (libsodium refuses low-order points).</summary>
    private static byte[]? Agree(Key key, PublicKey publicKey)
    {
        using var shared = X25519.Agree(key, publicKey, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return shared?.Export(SharedSecretBlobFormat.RawSharedSecret);
    }
}
