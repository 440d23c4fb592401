using System.Security.Cryptography;
using PrivateMl.Agent.Client;

namespace PrivateMl.Gateway.Signing;

/// <summary>The 32-byte secrets the gateway's keys are made from when the guest agent derives them.</summary>
internal static class AgentSecrets
{
    public const int SecretBytes = 32;

    /// <summary>
    /// The first 32 bytes of GetKey(<paramref name="path"/>, <paramref name="purpose"/>) (secp256k1; stable across
    /// restarts of the same app). The agent's answer is cleared; the caller clears the returned copy when done.
    /// </summary>
    public static async Task<byte[]> DeriveAsync(IDstackAgentClient agent, string path, string purpose, CancellationToken cancellationToken)
    {
        var key = await agent.GetKeyAsync(path, purpose, "secp256k1", cancellationToken);
        try
        {
            if (key.Key.Length < SecretBytes)
            {
                throw new DstackAgentException("the agent returned a key shorter than 32 bytes");
            }

            return key.Key.AsSpan(0, SecretBytes).ToArray();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key.Key);
        }
    }
}
