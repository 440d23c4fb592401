using System.Security.Cryptography;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// One E2EE v2 field (e2ee-v2.md §4): <c>key = HKDF-SHA256(salt = none, ikm = ECDH(ephemeral, recipient), info, 32)</c>,
/// AES-256-GCM, and the field value <c>hex(ephemeral_public ‖ nonce(12) ‖ ciphertext ‖ tag(16))</c>. Every field gets a
/// fresh ephemeral key and a fresh nonce; the AAD (<see cref="AciAad"/>) binds it to its place.
/// </summary>
public static class AciFieldCipher
{
    public const int NonceBytes = 12;
    public const int TagBytes = 16;

    /// <summary>Largest field value (hex characters) <see cref="Open"/> looks at.</summary>
    public const int MaxFieldHexChars = 32 * 1024 * 1024;

    /// <summary>Encrypts <paramref name="plaintext"/> to <paramref name="recipientPublic"/> with a fresh ephemeral key and nonce.</summary>
    public static string Seal(AciSuite suite, ReadOnlySpan<byte> recipientPublic, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> aad, RandomNumberGenerator? random = null)
    {
        using var ephemeral = AciPrivateKey.Create(suite, random);
        Span<byte> nonce = stackalloc byte[NonceBytes];
        if (random is null)
        {
            RandomNumberGenerator.Fill(nonce);
        }
        else
        {
            random.GetBytes(nonce);
        }

        return Seal(ephemeral, nonce, recipientPublic, plaintext, aad);
    }

    /// <summary>Deterministic form for known-answer tests: the caller supplies the ephemeral key and nonce.</summary>
    public static string Seal(AciPrivateKey ephemeral, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> recipientPublic, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> aad)
    {
        ArgumentNullException.ThrowIfNull(ephemeral);
        if (nonce.Length != NonceBytes)
        {
            throw new ArgumentException("the GCM nonce is 12 bytes", nameof(nonce));
        }

        var key = DeriveKey(ephemeral, recipientPublic)
            ?? throw new AciE2eeException(AciE2eeError.InvalidPublicKey, "the recipient public key is not usable for " + ephemeral.Suite.Algo());
        try
        {
            var pub = ephemeral.PublicKey;
            var output = new byte[pub.Length + NonceBytes + plaintext.Length + TagBytes];
            pub.CopyTo(output, 0);
            nonce.CopyTo(output.AsSpan(pub.Length));
            using var gcm = new AesGcm(key, TagBytes);
            gcm.Encrypt(nonce, plaintext, output.AsSpan(pub.Length + NonceBytes, plaintext.Length), output.AsSpan(output.Length - TagBytes), aad);
            return Convert.ToHexStringLower(output);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Decrypts a field value for <paramref name="recipient"/>. Anything wrong (not hex, too short, a bad ephemeral
    /// key, a failed tag, another AAD) is <see cref="AciE2eeError.DecryptionFailed"/>, without saying which.
    /// </summary>
    public static byte[] Open(AciPrivateKey recipient, string fieldHex, ReadOnlySpan<byte> aad)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        var pubLength = recipient.Suite.PublicKeyBytes();
        if (fieldHex is null || fieldHex.Length > MaxFieldHexChars || fieldHex.Length % 2 != 0 || fieldHex.Length < 2 * (pubLength + NonceBytes + TagBytes))
        {
            throw Failed();
        }

        byte[] bytes;
        try
        {
            bytes = Convert.FromHexString(fieldHex);
        }
        catch (FormatException)
        {
            throw Failed();
        }

        var key = DeriveKey(recipient, bytes.AsSpan(0, pubLength)) ?? throw Failed();
        try
        {
            var nonce = bytes.AsSpan(pubLength, NonceBytes);
            var cipher = bytes.AsSpan(pubLength + NonceBytes, bytes.Length - pubLength - NonceBytes - TagBytes);
            var tag = bytes.AsSpan(bytes.Length - TagBytes);
            var plaintext = new byte[cipher.Length];
            using var gcm = new AesGcm(key, TagBytes);
            gcm.Decrypt(nonce, cipher, tag, plaintext, aad);
            return plaintext;
        }
        catch (CryptographicException)
        {
            throw Failed();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>The AES key for one field (HKDF over the ECDH output); null when the peer key is unusable.</summary>
    internal static byte[]? DeriveKey(AciPrivateKey own, ReadOnlySpan<byte> peerPublic)
    {
        if (peerPublic.Length != own.Suite.PublicKeyBytes())
        {
            return null;
        }

        var shared = own.Agree(peerPublic);
        if (shared is null)
        {
            return null;
        }

        try
        {
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, salt: [], info: own.Suite.HkdfInfo());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    private static AciE2eeException Failed() => new(AciE2eeError.DecryptionFailed, "an encrypted field could not be decrypted");
}
