using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace PrivateMl.Gateway.Signing;

/// <summary>Ed25519 key (NSec/libsodium). The seed proxy's "address" for it is the 32-byte public key in hex.</summary>
internal sealed class Ed25519Signer : IDisposable
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private Ed25519Signer(Key key)
    {
        _key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Address = Convert.ToHexStringLower(PublicKey);
    }

    public byte[] PublicKey { get; }

    /// <summary>Lower-case hex of <see cref="PublicKey"/>.</summary>
    public string Address { get; }

    public static Ed25519Signer CreateRandom() => new(Key.Create(Algorithm));

    public static Ed25519Signer FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != 32)
        {
            throw new CryptographicException("an Ed25519 seed is 32 bytes");
        }

        return new Ed25519Signer(Key.Import(Algorithm, seed, KeyBlobFormat.RawPrivateKey));
    }

    public byte[] Sign(ReadOnlySpan<byte> data) => Algorithm.Sign(_key, data);

    /// <summary>128 lower-case hex characters over the UTF-8 text (seed format: no prefix).</summary>
    public string SignText(string text) => Convert.ToHexStringLower(Sign(Encoding.UTF8.GetBytes(text)));

    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != 32 || signature.Length != 64)
        {
            return false;
        }

        if (!NSec.Cryptography.PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
        {
            return false;
        }

        return Algorithm.Verify(key, data, signature);
    }

    public void Dispose() => _key.Dispose();

    public override string ToString() => $"{nameof(Ed25519Signer)}({Address})";
}
