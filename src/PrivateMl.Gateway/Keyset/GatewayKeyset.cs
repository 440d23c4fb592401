using System.Security.Cryptography;
using PrivateMl.Agent.Client;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Keyset;

/// <summary>
/// Adds entries to the gateway's attested keyset before it is frozen at start. Register implementations in DI
/// (<c>services.AddSingleton&lt;IKeysetContributor, MyContributor&gt;()</c>); each is asked once, after the receipt and
/// ACI E2EE keys exist, and may keep the private halves it made (it is a singleton).
/// </summary>
public interface IKeysetContributor
{
    /// <summary>The <c>e2ee_public_keys</c> entries to add (unknown <c>algo</c> values are ignored by ACI verifiers).</summary>
    Task<IReadOnlyList<KeysetKey>> ContributeAsync(KeysetContext context, CancellationToken cancellationToken);
}

/// <summary>What a <see cref="IKeysetContributor"/> may use while the keyset is built.</summary>
public sealed class KeysetContext
{
    private readonly IDstackAgentClient? _agent;
    private readonly RandomNumberGenerator _random;

    internal KeysetContext(SigningKeySource source, string keyPathPrefix, IDstackAgentClient? agent, RandomNumberGenerator random)
    {
        Source = source;
        KeyPathPrefix = keyPathPrefix;
        _agent = agent;
        _random = random;
    }

    /// <summary>Random keys (made in this TEE process) or keys derived through the guest agent.</summary>
    public SigningKeySource Source { get; }

    public string KeyPathPrefix { get; }

    /// <summary>
    /// 32 secret bytes for a key named <paramref name="name"/>: with agent-derived keys,
    /// GetKey(<c>{prefix}/{name}</c>, <paramref name="purpose"/>) (stable across restarts of the same app); otherwise fresh
    /// random bytes. The caller clears them when done.
    /// </summary>
    public async Task<byte[]> SecretAsync(string name, string purpose, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Source != SigningKeySource.Agent)
        {
            var secret = new byte[32];
            _random.GetBytes(secret);
            return secret;
        }

        return await AgentSecrets.DeriveAsync(_agent!, KeyPathPrefix + "/" + name, purpose, cancellationToken);
    }
}

/// <summary>
/// The gateway's attested workload keyset (ACI aci.md §3.1): the Ed25519 response/receipt signing key, the ACI E2EE v2
/// keys (X25519 and secp256k1, each its own key, never a signing key), the TLS SPKI hash when TLS is served, and what
/// contributors added. Fixed at start; its digest is what <c>format=aci</c> reports bind.
/// </summary>
public sealed class GatewayKeyset : IDisposable
{
    public const string ReceiptKeyId = "receipt-ed25519-1";
    public const string X25519KeyId = "aci-e2ee-x25519-1";
    public const string Secp256k1KeyId = "aci-e2ee-secp256k1-1";

    /// <summary>Agent key names (under the gateway's key path prefix) of the ACI E2EE keys.</summary>
    public const string X25519KeyName = "aci-e2ee-x25519-key";
    public const string Secp256k1KeyName = "aci-e2ee-secp256k1-key";
    public const string E2eePurpose = "e2ee";

    internal GatewayKeyset(WorkloadKeyset keyset, AciPrivateKey x25519, AciPrivateKey secp256k1)
    {
        Public = keyset;
        X25519 = x25519;
        Secp256k1 = secp256k1;
    }

    /// <summary>The public keyset (canonical bytes and digest included).</summary>
    public WorkloadKeyset Public { get; }

    /// <summary>The ACI E2EE v2 X25519 key.</summary>
    public AciPrivateKey X25519 { get; }

    /// <summary>The ACI E2EE v2 secp256k1 key (separate from the ECDSA response-signing key).</summary>
    public AciPrivateKey Secp256k1 { get; }

    /// <summary>The service key of a suite.</summary>
    public AciPrivateKey KeyFor(AciSuite suite) => suite == AciSuite.X25519 ? X25519 : Secp256k1;

    /// <summary>
    /// The same keys valid until <paramref name="now"/> + <paramref name="lifetime"/>: a new digest (so reports quote
    /// it from now on), and requests sealed to the keys a client already attested keep working. The copy shares the
    /// private keys: only the holder's current keyset is disposed, at shutdown.
    /// </summary>
    internal GatewayKeyset Renewed(DateTimeOffset now, TimeSpan lifetime) =>
        new(Public.WithNotAfter((now + lifetime).ToUnixTimeSeconds()), X25519, Secp256k1);

    internal static async Task<GatewayKeyset> BuildAsync(
        GatewayOptions options,
        GatewaySigningKeys signing,
        KeysetContext context,
        IEnumerable<IKeysetContributor> contributors,
        DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var xSecret = await context.SecretAsync(X25519KeyName, E2eePurpose, cancellationToken);
        var kSecret = await context.SecretAsync(Secp256k1KeyName, E2eePurpose, cancellationToken);
        AciPrivateKey? x = null, k = null;
        try
        {
            x = AciPrivateKey.FromSecret(AciSuite.X25519, xSecret);
            k = AciPrivateKey.FromSecret(AciSuite.Secp256k1, kSecret);
            var e2ee = new List<KeysetKey>
            {
                new(X25519KeyId, WorkloadKeyset.X25519Suite, x.PublicKeyHex),
                new(Secp256k1KeyId, WorkloadKeyset.Secp256k1Suite, k.PublicKeyHex),
            };
            foreach (var contributor in contributors)
            {
                e2ee.AddRange(await contributor.ContributeAsync(context, cancellationToken));
            }

            var tls = options.TlsSpkiSha256 is { } spki ? new[] { new KeysetTlsKey(spki.ToLowerInvariant(), options.TlsDomain) } : [];
            var keyset = new WorkloadKeyset(
                options.KeysetSubject,
                (now + options.KeysetLifetime).ToUnixTimeSeconds(),
                [new KeysetKey(ReceiptKeyId, WorkloadKeyset.Ed25519, signing.Ed25519Key.Address)],
                e2ee,
                tls);
            return new GatewayKeyset(keyset, x, k);
        }
        catch
        {
            x?.Dispose();
            k?.Dispose();
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(xSecret);
            CryptographicOperations.ZeroMemory(kSecret);
        }
    }

    public void Dispose()
    {
        X25519.Dispose();
        Secp256k1.Dispose();
    }
}

/// <summary>Holds the keyset once the host has started.</summary>
public sealed class GatewayKeysetHolder
{
    private GatewayKeyset? _keyset;

    public bool IsReady => Volatile.Read(ref _keyset) is not null;

    public GatewayKeyset Keyset => Volatile.Read(ref _keyset) ?? throw new InvalidOperationException("the keyset is not ready yet");

    internal void Set(GatewayKeyset keyset) => Volatile.Write(ref _keyset, keyset);
}
