using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Agent.Certificates;

namespace PrivateMl.Agent.Keys;

/// <summary>
/// dstack's KMS app-key formulas (dstack.md §5.3), for any provider that holds root keys: disk and env keys from the
/// root CA scalar, the app k256 key from the root k256 scalar, the app CA key from the root CA scalar.
/// </summary>
public static class AppKeyDerivation
{
    public static byte[] DiskCryptKey(ReadOnlySpan<byte> rootCaScalar, ReadOnlySpan<byte> appId, ReadOnlySpan<byte> instanceId) =>
        DstackKdf.DeriveDhSecret(rootCaScalar, appId.ToArray(), instanceId.ToArray(), "app-disk-crypt-key"u8.ToArray());

    public static byte[] EnvCryptKey(ReadOnlySpan<byte> rootCaScalar, ReadOnlySpan<byte> appId) =>
        DstackKdf.DeriveDhSecret(rootCaScalar, appId.ToArray(), "env-encrypt-key"u8.ToArray());

    public static byte[] AppK256Key(ReadOnlySpan<byte> rootK256, ReadOnlySpan<byte> appId) =>
        DstackKdf.DeriveKey(rootK256, appId.ToArray(), "app-key"u8.ToArray());

    public static ECDsa AppCaKey(ReadOnlySpan<byte> rootCaScalar, ReadOnlySpan<byte> appId) =>
        DstackKdf.DeriveP256(rootCaScalar, appId.ToArray(), "app-ca"u8.ToArray());

    /// <summary>Root signature over Keccak-256("dstack-kms-issued:" ‖ app_id ‖ compressed app pubkey), 65 bytes.</summary>
    public static byte[] K256Signature(ReadOnlySpan<byte> rootK256, ReadOnlySpan<byte> appId, ReadOnlySpan<byte> appPublicKey) =>
        Secp256k1.SignRecoverable(rootK256, Hashes.Keccak256(Concat("dstack-kms-issued:"u8, appId, appPublicKey)));

    /// <summary>Everything an app receives, derived from the two root keys.</summary>
    public static AppKeys Derive(
        ReadOnlySpan<byte> rootCaScalar,
        X509Certificate2 rootCaCertificate,
        ReadOnlySpan<byte> rootK256,
        AppKeyRequest request,
        string keyProviderInfo,
        DateTimeOffset now)
    {
        var appId = request.AppId.Span;
        var k256 = AppK256Key(rootK256, appId);
        try
        {
            var signature = K256Signature(rootK256, appId, Secp256k1.CompressedPublicKey(k256));
            var caKey = AppCaKey(rootCaScalar, appId);
            using var rootKey = DstackKdf.P256FromScalar(rootCaScalar);
            var caCertificate = CertificateFactory.CreateAppCa(caKey, appId, rootCaCertificate, rootKey, now.AddDays(3650));
            return new AppKeys(
                appId,
                k256,
                signature,
                DiskCryptKey(rootCaScalar, appId, request.InstanceId.Span),
                EnvCryptKey(rootCaScalar, appId),
                caKey,
                caCertificate,
                [rootCaCertificate],
                keyProviderInfo);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(k256);
        }
    }

    internal static byte[] Concat(params ReadOnlySpan<byte[]> parts)
    {
        var length = 0;
        foreach (var part in parts)
        {
            length += part.Length;
        }

        var output = new byte[length];
        var offset = 0;
        foreach (var part in parts)
        {
            part.CopyTo(output, offset);
            offset += part.Length;
        }

        return output;
    }

    private static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c) => [.. a, .. b, .. c];
}
