using System.Security.Cryptography;
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

    /// <summary>Which secp256k1 implementation this process uses: <c>native</c> (libsecp256k1) or <c>managed</c> (the C# port).</summary>
    public static string Secp256k1Implementation => Secp256k1Backend.Default.Name;

    /// <summary>The environment variable that forces the managed port when set to <c>managed</c>.</summary>
    public const string Secp256k1ImplementationVariable = Secp256k1Backend.EnvironmentVariable;

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

        return Secp256k1Backend.Default.IsValidPublicKey(bytes) ? bytes : null;
    }
}

/// <summary>
/// A private E2EE key of one suite (the service's keyset key, or a client's per-request key). The secret stays in
/// this object; <see cref="Dispose"/> wipes it. secp256k1 keys run on <see cref="Secp256k1Backend.Default"/> (native
/// libsecp256k1 when it loads, else the managed port; both give the same bytes).
/// </summary>
public sealed class AciPrivateKey : IDisposable
{
    private readonly byte[] _secret;

    // X25519 keys are imported into libsodium once and reused for every agreement (a service key serves many fields).
    private readonly Key? _x25519;
    private readonly Secp256k1Backend? _secp256k1;

    private AciPrivateKey(AciSuite suite, byte[] secret, Secp256k1Backend? backend)
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
            _secp256k1 = backend ?? Secp256k1Backend.Default;
            PublicKey = new byte[Secp256k1Backend.PublicKeyBytes];
            if (!_secp256k1.TryCreatePublicKey(secret, PublicKey))
            {
                CryptographicOperations.ZeroMemory(secret);
                throw new CryptographicException("not a valid secp256k1 private key");
            }
        }

        PublicKeyHex = Convert.ToHexStringLower(PublicKey);
    }

    public AciSuite Suite { get; }

    public byte[] PublicKey { get; }

    public string PublicKeyHex { get; }

    /// <summary>A key from 32 secret bytes (X25519 clamps them on use; secp256k1 needs 0 &lt; k &lt; n).</summary>
    public static AciPrivateKey FromSecret(AciSuite suite, ReadOnlySpan<byte> secret) => FromSecret(suite, secret, backend: null);

    /// <summary>A fresh random key.</summary>
    public static AciPrivateKey Create(AciSuite suite, RandomNumberGenerator? random = null) => Create(suite, random, backend: null);

    /// <summary><see cref="FromSecret(AciSuite, ReadOnlySpan{byte})"/> on a chosen secp256k1 backend (tests run both).</summary>
    internal static AciPrivateKey FromSecret(AciSuite suite, ReadOnlySpan<byte> secret, Secp256k1Backend? backend)
    {
        if (secret.Length != 32)
        {
            throw new CryptographicException("an E2EE private key is 32 bytes");
        }

        return new AciPrivateKey(suite, secret.ToArray(), backend);
    }

    internal static AciPrivateKey Create(AciSuite suite, RandomNumberGenerator? random, Secp256k1Backend? backend)
    {
        var secret = new byte[32];
        var secp256k1 = suite == AciSuite.Secp256k1 ? backend ?? Secp256k1Backend.Default : null;
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

            if (secp256k1 is null || secp256k1.IsValidSecret(secret))
            {
                return new AciPrivateKey(suite, secret, secp256k1);
            }
        }
    }

    /// <summary>The raw ECDH shared secret (X25519 output, or the secp256k1 point's x-coordinate); null for an unusable peer key.</summary>
    internal byte[]? Agree(ReadOnlySpan<byte> peerPublic)
    {
        if (_secp256k1 is not null)
        {
            var shared = new byte[Secp256k1Backend.SharedBytes];
            return _secp256k1.TryAgree(_secret, peerPublic, shared) ? shared : null;
        }

        if (!NSec.Cryptography.PublicKey.TryImport(KeyAgreementAlgorithm.X25519, peerPublic, KeyBlobFormat.RawPublicKey, out var peer) || peer is null)
        {
            return null;
        }

        try
        {
            using var shared = KeyAgreementAlgorithm.X25519.Agree(_x25519!, peer, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
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
