using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace PrivateMl.Agent.Keys;

/// <summary>
/// The keys one app receives from its key provider (dstack's <c>AppKeyResponse</c>, dstack.md §5.3): the app
/// secp256k1 key with the provider's signature over it, disk and env keys, and the app CA that signs TLS
/// certificates. Holds secrets: <see cref="ToString"/> shows only the app id; <see cref="Dispose"/> clears them.
/// </summary>
public sealed class AppKeys : IDisposable
{
    private readonly byte[] _k256Key;
    private readonly byte[] _diskCryptKey;
    private readonly byte[] _envCryptKey;

    public AppKeys(
        ReadOnlySpan<byte> appId,
        ReadOnlySpan<byte> k256Key,
        ReadOnlySpan<byte> k256Signature,
        ReadOnlySpan<byte> diskCryptKey,
        ReadOnlySpan<byte> envCryptKey,
        ECDsa appCaKey,
        X509Certificate2 appCaCertificate,
        IReadOnlyList<X509Certificate2> issuerChain,
        string keyProviderInfo)
    {
        if (appId.Length != 20)
        {
            throw new ArgumentException("app_id must be 20 bytes", nameof(appId));
        }

        if (!Secp256k1.IsValidPrivateKey(k256Key))
        {
            throw new ArgumentException("k256 key is not a valid secp256k1 scalar", nameof(k256Key));
        }

        AppId = appId.ToArray();
        _k256Key = k256Key.ToArray();
        K256Signature = k256Signature.ToArray();
        _diskCryptKey = diskCryptKey.ToArray();
        _envCryptKey = envCryptKey.ToArray();
        AppCaKey = appCaKey;
        AppCaCertificate = appCaCertificate;
        IssuerChain = issuerChain;
        KeyProviderInfo = keyProviderInfo;
        K256PublicKey = Secp256k1.CompressedPublicKey(_k256Key);
    }

    /// <summary>20-byte app id the keys were issued for.</summary>
    public ReadOnlyMemory<byte> AppId { get; }

    /// <summary>Compressed (33-byte) public key of the app k256 key.</summary>
    public ReadOnlyMemory<byte> K256PublicKey { get; }

    /// <summary>65-byte provider signature over Keccak-256("dstack-kms-issued:" ‖ app_id ‖ app pubkey); empty if none.</summary>
    public ReadOnlyMemory<byte> K256Signature { get; }

    /// <summary>Signs TLS certificates for this app.</summary>
    public ECDsa AppCaKey { get; }

    public X509Certificate2 AppCaCertificate { get; }

    /// <summary>Certificates above the app CA, nearest first (the provider root last).</summary>
    public IReadOnlyList<X509Certificate2> IssuerChain { get; }

    /// <summary>The <c>key-provider</c> event payload, e.g. <c>{"name":"local","id":"3059…"}</c>.</summary>
    public string KeyProviderInfo { get; }

    internal ReadOnlySpan<byte> K256Key => _k256Key;

    internal ReadOnlySpan<byte> DiskCryptKey => _diskCryptKey;

    internal ReadOnlySpan<byte> EnvCryptKey => _envCryptKey;

    public override string ToString() => $"AppKeys(app_id={Convert.ToHexStringLower(AppId.Span)})";

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_k256Key);
        CryptographicOperations.ZeroMemory(_diskCryptKey);
        CryptographicOperations.ZeroMemory(_envCryptKey);
        AppCaKey.Dispose();
    }
}

/// <summary>Who asks for app keys: the identity measured into RTMR3 (and, for a KMS, the evidence).</summary>
public sealed record AppKeyRequest(ReadOnlyMemory<byte> AppId, ReadOnlyMemory<byte> InstanceId);

/// <summary>
/// Source of app keys. The local provider derives them from a sealed root in the state directory; the KMS provider
/// (<see cref="KmsKeyProvider"/>) fetches them over RA-TLS. Both must produce keys with dstack's derivations for the same root.
/// </summary>
public interface IKeyProvider
{
    /// <summary>Short name, used in the <c>key-provider</c> event ("local", "kms").</summary>
    string Name { get; }

    /// <summary>The <c>key-provider</c> event payload (compact JSON, <c>{"name":…,"id":…}</c>).</summary>
    string KeyProviderInfo { get; }

    ValueTask<AppKeys> GetAppKeysAsync(AppKeyRequest request, CancellationToken cancellationToken = default);

    /// <summary>Runs once before the boot identity is measured (a KMS provider learns the KMS root it will record).</summary>
    ValueTask InitializeAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}
