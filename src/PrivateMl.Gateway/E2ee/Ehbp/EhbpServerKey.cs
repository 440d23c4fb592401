using System.Security.Cryptography;
using PrivateMl.Agent.Client;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.E2ee.Hpke;

namespace PrivateMl.Gateway.E2ee.Ehbp;

/// <summary>
/// The gateway's EHBP (HPKE X25519) key pair. It is made inside the TEE at start, or derived by the guest agent
/// (<c>GetKey({prefix}/ehbp-x25519-key, "ehbp")</c>) like the signing keys, and used for nothing else.
/// </summary>
internal sealed class EhbpServerKey : IDisposable
{
    /// <summary>The keyset <c>algo</c> name of this key (an <c>e2ee_public_keys</c> entry).</summary>
    public const string KeysetAlgorithm = "ehbp-x25519-hkdf-sha256-aes-256-gcm";

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

    public static async Task<EhbpServerKey> DeriveAsync(IDstackAgentClient agent, string prefix, CancellationToken cancellationToken)
    {
        var key = await agent.GetKeyAsync(prefix + "/ehbp-x25519-key", "ehbp", "secp256k1", cancellationToken).ConfigureAwait(false);
        try
        {
            if (key.Key.Length < 32)
            {
                throw new DstackAgentException("the agent returned a key shorter than 32 bytes");
            }

            return new EhbpServerKey(key.Key.AsSpan(0, 32).ToArray());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key.Key);
        }
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_privateKey);
}

/// <summary>Holds the EHBP key once the host has started.</summary>
internal sealed class EhbpKeyHolder
{
    private EhbpServerKey? _key;

    public EhbpServerKey? Key => Volatile.Read(ref _key);

    public void Set(EhbpServerKey key) => Volatile.Write(ref _key, key);
}

/// <summary>Makes or derives the EHBP key when the host starts (after the signing keys).</summary>
internal sealed class EhbpKeyStartup(
    GatewayOptions options,
    EhbpKeyHolder holder,
    RandomNumberGenerator random,
    IDstackAgentClient? agent = null) : Microsoft.Extensions.Hosting.IHostedService, IAsyncDisposable
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        holder.Set(options.KeySource == SigningKeySource.Agent
            ? await EhbpServerKey.DeriveAsync(agent!, options.KeyPathPrefix, cancellationToken).ConfigureAwait(false)
            : EhbpServerKey.CreateRandom(random));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask DisposeAsync()
    {
        holder.Key?.Dispose();
        return ValueTask.CompletedTask;
    }
}
