using System.Security.Cryptography;
using NBitcoin.Secp256k1;
using NSec.Cryptography;

namespace PrivateMl.E2ee.Aci;

/// <summary>The two E2EE v2 suites (e2ee-v2.md §4).</summary>
public enum AciSuite
{
    /// <summary><c>x25519-aes-256-gcm-hkdf-sha256</c> (recommended): 32-byte raw keys.</summary>
    X25519 = 1,

    /// <summary><c>secp256k1-aes-256-gcm-hkdf-sha256</c>: 65-byte uncompressed SEC1 keys on the wire.</summary>
    Secp256k1 = 2,
}

/// <summary>Names, sizes and key handling per suite.</summary>
public static class AciSuites
{
    public static string Algo(this AciSuite suite) => suite == AciSuite.X25519 ? WorkloadKeyset.X25519Suite : WorkloadKeyset.Secp256k1Suite;

    /// <summary>The HKDF <c>info</c> of the suite.</summary>
    public static byte[] HkdfInfo(this AciSuite suite) => suite == AciSuite.X25519 ? "aci.e2ee.v2.x25519"u8.ToArray() : "aci.e2ee.v2.secp256k1"u8.ToArray();

    public static int PublicKeyBytes(this AciSuite suite) => suite == AciSuite.X25519 ? 32 : 65;

    public static AciSuite? FromAlgo(string? algo) => algo switch
    {
        WorkloadKeyset.X25519Suite => AciSuite.X25519,
        WorkloadKeyset.Secp256k1Suite => AciSuite.Secp256k1,
        _ => null,
    };

    /// <summary>
    /// Parses a public key of the suite from hex (optional 0x, either case); secp256k1 keys may come as 64 bytes without
    /// the 04 prefix and are normalised to 65. Null when it is not a valid point (never throws).
    /// </summary>
    public static byte[]? ParsePublicKey(this AciSuite suite, string? hex)
    {
        if (hex is null || hex.Length > 2 + 2 * 65)
        {
            return null;
        }

        var text = hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? hex[2..] : hex;
        byte[] bytes;
        try
        {
            bytes = Convert.FromHexString(text);
        }
        catch (FormatException)
        {
            return null;
        }

        if (suite == AciSuite.X25519)
        {
            return bytes.Length == 32 && NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, bytes, KeyBlobFormat.RawPublicKey, out _) ? bytes : null;
        }

        if (bytes.Length == 64)
        {
            bytes = [0x04, .. bytes];
        }

        return bytes.Length == 65 && bytes[0] == 0x04 && ECPubKey.TryCreate(bytes, Context.Instance, out _, out _) ? bytes : null;
    }

    /// <summary>The raw ECDH shared secret (X25519 output, or the secp256k1 point's x-coordinate); null for an unusable peer key.</summary>
    internal static byte[]? Agree(AciSuite suite, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublic)
    {
        if (suite == AciSuite.X25519)
        {
            if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, peerPublic, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
            {
                return null;
            }

            using var key = Key.Import(KeyAgreementAlgorithm.X25519, privateKey, KeyBlobFormat.RawPrivateKey);
            using var shared = KeyAgreementAlgorithm.X25519.Agree(key, peer, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
            return shared?.Export(SharedSecretBlobFormat.RawSharedSecret);
        }

        if (!ECPrivKey.TryCreate(privateKey, Context.Instance, out var priv) || priv is null
            || !ECPubKey.TryCreate(peerPublic, Context.Instance, out _, out var pub) || pub is null)
        {
            return null;
        }

        using (priv)
        {
            var point = pub.GetSharedPubkey(priv);
            Span<byte> compressed = stackalloc byte[33];
            point.WriteToSpan(true, compressed, out _);
            return compressed[1..].ToArray();
        }
    }

    /// <summary>The public key of a 32-byte private key (raw X25519, or uncompressed secp256k1).</summary>
    internal static byte[] PublicKeyOf(AciSuite suite, ReadOnlySpan<byte> privateKey)
    {
        if (suite == AciSuite.X25519)
        {
            using var key = Key.Import(KeyAgreementAlgorithm.X25519, privateKey, KeyBlobFormat.RawPrivateKey);
            return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        }

        if (!ECPrivKey.TryCreate(privateKey, Context.Instance, out var priv) || priv is null)
        {
            throw new CryptographicException("not a valid secp256k1 private key");
        }

        using (priv)
        {
            var output = new byte[65];
            priv.CreatePubKey().WriteToSpan(false, output, out _);
            return output;
        }
    }
}

/// <summary>
/// A private E2EE key of one suite (the service's keyset key, or a client's per-request key). The secret stays in
/// this object; <see cref="Dispose"/> wipes it.
/// </summary>
public sealed class AciPrivateKey : IDisposable
{
    private readonly byte[] _secret;

    // X25519 keys are imported into libsodium once and reused for every agreement (a service key serves many fields).
    private readonly Key? _x25519;

    private AciPrivateKey(AciSuite suite, byte[] secret)
    {
        Suite = suite;
        _secret = secret;
        if (suite == AciSuite.X25519)
        {
            _x25519 = Key.Import(KeyAgreementAlgorithm.X25519, secret, KeyBlobFormat.RawPrivateKey);
            PublicKey = _x25519.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        }
        else
        {
            PublicKey = AciSuites.PublicKeyOf(suite, secret);
        }

        PublicKeyHex = Convert.ToHexStringLower(PublicKey);
    }

    public AciSuite Suite { get; }

    public byte[] PublicKey { get; }

    public string PublicKeyHex { get; }

    /// <summary>A key from 32 secret bytes (X25519 clamps them on use; secp256k1 needs 0 &lt; k &lt; n).</summary>
    public static AciPrivateKey FromSecret(AciSuite suite, ReadOnlySpan<byte> secret)
    {
        if (secret.Length != 32)
        {
            throw new CryptographicException("an E2EE private key is 32 bytes");
        }

        return new AciPrivateKey(suite, secret.ToArray());
    }

    /// <summary>A fresh random key.</summary>
    public static AciPrivateKey Create(AciSuite suite, RandomNumberGenerator? random = null)
    {
        var secret = new byte[32];
        while (true)
        {
            if (random is null)
            {
                RandomNumberGenerator.Fill(secret);
            }
            else
            {
                random.GetBytes(secret);
            }

            if (suite == AciSuite.X25519 || (ECPrivKey.TryCreate(secret, Context.Instance, out var k) && k is not null))
            {
                return new AciPrivateKey(suite, secret);
            }
        }
    }

    internal byte[]? Agree(ReadOnlySpan<byte> peerPublic)
    {
        if (_x25519 is null)
        {
            return AciSuites.Agree(Suite, _secret, peerPublic);
        }

        if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, peerPublic, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            return null;
        }

        try
        {
            using var shared = KeyAgreementAlgorithm.X25519.Agree(_x25519, peer, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
            return shared?.Export(SharedSecretBlobFormat.RawSharedSecret);
        }
        catch (CryptographicException)
        {
            return null; // a low-order point: no shared secret
        }
    }

    public void Dispose()
    {
        _x25519?.Dispose();
        CryptographicOperations.ZeroMemory(_secret);
    }

    public override string ToString() => $"{nameof(AciPrivateKey)}({Suite.Algo()}, {PublicKeyHex})";
}
