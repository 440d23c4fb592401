using System.Security.Cryptography;

namespace PrivateMl.Agent.Keys;

/// <summary>
/// dstack's key-derivation primitives (ra-tls kdf; dstack.md §5.1): HKDF-SHA256 with salt "RATLS", the context parts
/// concatenated without separators, 32 bytes out; P-256 keys whose scalar is such an output; and the "DH secret"
/// = SHA-256 of the 138-byte PKCS#8 DER of a derived P-256 key. Identical outputs for identical roots and contexts are
/// the contract: KMS, guest agent and any dstack peer must agree byte for byte.
/// </summary>
public static class DstackKdf
{
    public const int KeySize = 32;

    private static readonly byte[] Salt = "RATLS"u8.ToArray();

    /// <summary>HKDF-SHA256(salt "RATLS", ikm, info = context[0] ‖ context[1] ‖ …), 32 bytes.</summary>
    public static byte[] DeriveKey(ReadOnlySpan<byte> ikm, params ReadOnlySpan<byte[]> context)
    {
        var total = 0;
        foreach (var part in context)
        {
            total += part.Length;
        }

        var info = new byte[total];
        var offset = 0;
        foreach (var part in context)
        {
            part.CopyTo(info, offset);
            offset += part.Length;
        }

        return HKDF.DeriveKey(HashAlgorithmName.SHA256, ikm.ToArray(), KeySize, Salt, info);
    }

    /// <summary>A P-256 key whose scalar is <c>DeriveKey(ikm, context)</c>.</summary>
    /// <exception cref="CryptographicException">The derived scalar is 0 or ≥ n (probability ≈ 2⁻³²).</exception>
    public static ECDsa DeriveP256(ReadOnlySpan<byte> ikm, params ReadOnlySpan<byte[]> context)
    {
        var scalar = DeriveKey(ikm, context);
        try
        {
            return P256FromScalar(scalar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scalar);
        }
    }

    /// <summary>Imports a P-256 private key from its 32-byte big-endian scalar.</summary>
    public static ECDsa P256FromScalar(ReadOnlySpan<byte> scalar)
    {
        if (scalar.Length != KeySize)
        {
            throw new ArgumentException("a 32-byte scalar is required", nameof(scalar));
        }

        var parameters = new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = scalar.ToArray() };
        var key = ECDsa.Create();
        try
        {
            key.ImportParameters(parameters);
            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(parameters.D);
        }
    }

    /// <summary>The 32-byte scalar of a P-256 private key.</summary>
    public static byte[] P256Scalar(ECDsa key) => key.ExportParameters(includePrivateParameters: true).D!;

    /// <summary>SHA-256 of the PKCS#8 DER of <c>DeriveP256(ikm, context)</c> (dstack's derive_dh_secret).</summary>
    public static byte[] DeriveDhSecret(ReadOnlySpan<byte> ikm, params ReadOnlySpan<byte[]> context)
    {
        using var key = DeriveP256(ikm, context);
        var der = key.ExportPkcs8PrivateKey();
        try
        {
            return SHA256.HashData(der);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    /// <summary>PKCS#8 PEM in rcgen's form: 64-character lines, trailing newline.</summary>
    public static string ToPkcs8Pem(ECDsa key)
    {
        var der = key.ExportPkcs8PrivateKey();
        try
        {
            return new string(PemEncoding.Write("PRIVATE KEY", der)) + "\n";
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }
}
