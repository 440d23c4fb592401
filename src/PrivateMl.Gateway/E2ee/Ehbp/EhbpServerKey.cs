using System.Security.Cryptography;
using PrivateMl.E2ee.Aci;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.E2ee.Hpke;
using PrivateMl.Gateway.Keyset;

namespace PrivateMl.Gateway.E2ee.Ehbp;

/// <summary>
/// The gateway's EHBP (HPKE X25519) key pair. It is made inside the TEE at start, or derived by the guest agent
/// (<c>GetKey({prefix}/ehbp-x25519-key, "ehbp")</c>) like the other gateway keys, listed in the attested keyset, and
/// used for nothing else.
/// </summary>
internal sealed class EhbpServerKey : IDisposable
{
    private readonly byte[] _privateKey;

    private EhbpServerKey(byte[] privateKey)
    {
        _privateKey = privateKey;
        PublicKey = X25519Kem.PublicKeyOf(privateKey);
        KeyConfig = EhbpKeyConfig.Encode(PublicKey);
    }

    public byte[] PublicKey { get; }

    /// <summary>The <c>/.well-known/hpke-keys</c> body.</summary>
    public byte[] KeyConfig { get; }

    internal ReadOnlySpan<byte> PrivateKey => _privateKey;

    public static EhbpServerKey CreateRandom(RandomNumberGenerator random) => new(X25519Kem.GenerateKeyPair(random).PrivateKey);

    /// <summary>The key for 32 secret bytes (clamped by X25519 on use).</summary>
    public static EhbpServerKey FromSecret(ReadOnlySpan<byte> secret) => new(secret.ToArray());

    public void Dispose() => CryptographicOperations.ZeroMemory(_privateKey);
}

/// <summary>Holds the EHBP key once the host has started.</summary>
internal sealed class EhbpKeyHolder
{
    private EhbpServerKey? _key;

    public EhbpServerKey? Key => Volatile.Read(ref _key);

    public void Set(EhbpServerKey key) => Volatile.Write(ref _key, key);
}

/// <summary>
/// Makes (or derives through the agent) the EHBP key while the attested keyset is built, and lists its public half as
/// an <c>e2ee_public_keys</c> entry (<see cref="EhbpProtocol.KeysetAlgorithm"/>; ACI verifiers ignore the unknown algo).
/// </summary>
internal sealed class EhbpKeysetContributor(EhbpKeyHolder holder) : IKeysetContributor, IDisposable
{
    public const string KeyId = "ehbp-hpke-1";
    public const string KeyName = "ehbp-x25519-key";
    public const string Purpose = "ehbp";

    public async Task<IReadOnlyList<KeysetKey>> ContributeAsync(KeysetContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var secret = await context.SecretAsync(KeyName, Purpose, cancellationToken).ConfigureAwait(false);
        try
        {
            var key = EhbpServerKey.FromSecret(secret);
            holder.Set(key);
            return [new KeysetKey(KeyId, EhbpProtocol.KeysetAlgorithm, Convert.ToHexStringLower(key.PublicKey))];
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    public void Dispose() => holder.Key?.Dispose();
}
