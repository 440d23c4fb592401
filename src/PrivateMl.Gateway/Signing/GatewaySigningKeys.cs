using System.Security.Cryptography;
using PrivateMl.Agent.Client;

namespace PrivateMl.Gateway.Signing;

/// <summary>The gateway's two response-signing keys and what the attestation report binds for each.</summary>
internal sealed class GatewaySigningKeys : IDisposable
{
    public const string Ecdsa = "ecdsa";
    public const string Ed25519 = "ed25519";

    public GatewaySigningKeys(EthereumSigner ecdsa, Ed25519Signer ed25519, SigningKeySource source)
    {
        EcdsaKey = ecdsa;
        Ed25519Key = ed25519;
        Source = source;
        EcdsaReportDataPrefixHex = Convert.ToHexStringLower(ReportDataPrefix(Ecdsa));
        Ed25519ReportDataPrefixHex = Convert.ToHexStringLower(ReportDataPrefix(Ed25519));
    }

    /// <summary>Lower-case hex of <see cref="ReportDataPrefix"/> for ECDSA, made once (every receipt carries it).</summary>
    public string EcdsaReportDataPrefixHex { get; }

    /// <summary>Lower-case hex of <see cref="ReportDataPrefix"/> for Ed25519, made once.</summary>
    public string Ed25519ReportDataPrefixHex { get; }

    public EthereumSigner EcdsaKey { get; }

    public Ed25519Signer Ed25519Key { get; }

    public SigningKeySource Source { get; }

    public static GatewaySigningKeys CreateRandom(RandomNumberGenerator random) =>
        new(EthereumSigner.CreateRandom(random), Ed25519Signer.CreateRandom(), SigningKeySource.Random);

    /// <summary>Keys derived by the agent: GetKey(<c>{prefix}/ecdsa-signing-key</c>, "signing") and the Ed25519 seed likewise.</summary>
    public static async Task<GatewaySigningKeys> DeriveAsync(IDstackAgentClient agent, string prefix, CancellationToken cancellationToken)
    {
        var ecdsa = await AgentSecrets.DeriveAsync(agent, prefix + "/ecdsa-signing-key", "signing", cancellationToken);
        byte[] ed = [];
        try
        {
            ed = await AgentSecrets.DeriveAsync(agent, prefix + "/ed25519-signing-key", "signing", cancellationToken);
            return new GatewaySigningKeys(new EthereumSigner(ecdsa), Ed25519Signer.FromSeed(ed), SigningKeySource.Agent);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ecdsa);
            CryptographicOperations.ZeroMemory(ed);
        }
    }

    /// <summary>The address string the report and signatures show for an algorithm.</summary>
    public string AddressOf(string algorithm) => algorithm == Ecdsa ? EcdsaKey.Address : Ed25519Key.Address;

    /// <summary>report_data[0..32]: the 20-byte Ethereum address or the 32-byte Ed25519 public key, right-padded with zeros.</summary>
    public byte[] ReportDataPrefix(string algorithm)
    {
        var output = new byte[32];
        (algorithm == Ecdsa ? EcdsaKey.AddressBytes : Ed25519Key.PublicKey).CopyTo(output, 0);
        return output;
    }

    public void Dispose()
    {
        EcdsaKey.Dispose();
        Ed25519Key.Dispose();
    }
}

/// <summary>Holds the keys once the host has started (they may come from the agent, asynchronously).</summary>
internal sealed class SigningKeyHolder
{
    private GatewaySigningKeys? _keys;

    public bool IsReady => Volatile.Read(ref _keys) is not null;

    public GatewaySigningKeys Keys => Volatile.Read(ref _keys) ?? throw new InvalidOperationException("the signing keys are not ready yet");

    public void Set(GatewaySigningKeys keys) => Volatile.Write(ref _keys, keys);
}
