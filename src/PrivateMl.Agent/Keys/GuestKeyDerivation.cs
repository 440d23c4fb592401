using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace PrivateMl.Agent.Keys;

/// <summary>A key derived by GetKey with its signature chain. Holds a secret: <see cref="ToString"/> hides it.</summary>
public sealed class DerivedKey(byte[] key, byte[] publicKey, IReadOnlyList<byte[]> signatureChain)
{
    /// <summary>32-byte secp256k1 scalar or Ed25519 seed.</summary>
    public byte[] Key { get; } = key;

    /// <summary>Compressed secp256k1 (33 B) or Ed25519 (32 B) public key.</summary>
    public byte[] PublicKey { get; } = publicKey;

    /// <summary>[app-key signature over "purpose:hex(pub)", provider signature over the app key].</summary>
    public IReadOnlyList<byte[]> SignatureChain { get; } = signatureChain;

    public override string ToString() => $"DerivedKey(pub={Convert.ToHexStringLower(PublicKey)})";
}

/// <summary>The result of Sign: signature, the chain [signature, chain[0], chain[1]] and the signing public key.</summary>
public sealed record SignResult(byte[] Signature, IReadOnlyList<byte[]> SignatureChain, byte[] PublicKey);

/// <summary>
/// Keys derived inside the CVM from the app k256 key (dstack.md §5.4): GetKey (secp256k1 / Ed25519), Sign / Verify
/// with the key at path "vms", purpose "signing", and the deterministic P-256 key of Tappd.DeriveKey.
/// </summary>
public sealed class GuestKeyDerivation(AppKeys appKeys)
{
    public const string SigningPath = "vms";
    public const string SigningPurpose = "signing";

    public DerivedKey GetKey(string path, string purpose, KeyAlgorithm algorithm)
    {
        var seed = DstackKdf.DeriveKey(appKeys.K256Key, Encoding.UTF8.GetBytes(path));
        byte[] publicKey;
        if (algorithm == KeyAlgorithm.Ed25519)
        {
            using var key = NSec.Cryptography.Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
            publicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        }
        else
        {
            if (!Secp256k1.IsValidPrivateKey(seed))
            {
                CryptographicOperations.ZeroMemory(seed);
                throw new CryptographicException("derived secp256k1 scalar is out of range");
            }

            publicKey = Secp256k1.CompressedPublicKey(seed);
        }

        var message = Encoding.UTF8.GetBytes(purpose + ":" + Convert.ToHexStringLower(publicKey));
        var appSignature = Secp256k1.SignRecoverable(appKeys.K256Key, Hashes.Keccak256(message));
        return new DerivedKey(seed, publicKey, [appSignature, appKeys.K256Signature.ToArray()]);
    }

    /// <summary>Signs with the "vms"/"signing" key. Throws <see cref="ArgumentException"/> for a prehashed digest that is not 32 bytes.</summary>
    public SignResult Sign(SignatureAlgorithmKind algorithm, ReadOnlySpan<byte> data)
    {
        if (algorithm == SignatureAlgorithmKind.Secp256k1Prehashed && data.Length != 32)
        {
            throw new ArgumentException("secp256k1_prehashed needs a 32-byte digest", nameof(data));
        }

        var derived = GetKey(SigningPath, SigningPurpose, algorithm == SignatureAlgorithmKind.Ed25519 ? KeyAlgorithm.Ed25519 : KeyAlgorithm.Secp256k1);
        try
        {
            byte[] signature = algorithm switch
            {
                SignatureAlgorithmKind.Ed25519 => SignEd25519(derived.Key, data),
                SignatureAlgorithmKind.Secp256k1Prehashed => Secp256k1.SignCompact(derived.Key, data),
                _ => Secp256k1.SignCompact(derived.Key, SHA256.HashData(data)),
            };
            return new SignResult(signature, [signature, .. derived.SignatureChain], derived.PublicKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(derived.Key);
        }
    }

    /// <summary>Verifies a signature made by <see cref="Sign"/>'s rules; false for any malformed input.</summary>
    public static bool Verify(SignatureAlgorithmKind algorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature, ReadOnlySpan<byte> publicKey)
    {
        switch (algorithm)
        {
            case SignatureAlgorithmKind.Ed25519:
                return signature.Length == 64
                    && PublicKey.TryImport(SignatureAlgorithm.Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out var pub)
                    && pub is not null
                    && SignatureAlgorithm.Ed25519.Verify(pub, data, signature);
            case SignatureAlgorithmKind.Secp256k1Prehashed:
                return data.Length == 32 && Secp256k1.VerifyCompact(publicKey, data, signature);
            default:
                return Secp256k1.VerifyCompact(publicKey, SHA256.HashData(data), signature);
        }
    }

    /// <summary>Tappd.DeriveKey's deterministic P-256 key: scalar HKDF(app k256 key, [path]).</summary>
    public ECDsa DeriveP256(string path) => DstackKdf.DeriveP256(appKeys.K256Key, Encoding.UTF8.GetBytes(path));

    private static byte[] SignEd25519(byte[] seed, ReadOnlySpan<byte> data)
    {
        using var key = NSec.Cryptography.Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
        return SignatureAlgorithm.Ed25519.Sign(key, data);
    }
}
