using System.Security.Cryptography;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Digests;

namespace PrivateMl.Agent.Keys;

/// <summary>The digests dstack names: SHA-2 from the BCL; SHA-3 and original Keccak from BouncyCastle.</summary>
internal static class Hashes
{
    public static byte[] Keccak256(ReadOnlySpan<byte> data) => Run(new KeccakDigest(256), data);

    /// <summary>
    /// The hash algorithms of Tappd.TdxQuote (dstack.md §3.3); null for a name dstack does not know.
    /// </summary>
    public static byte[]? ByDstackName(string name, ReadOnlySpan<byte> data) => name switch
    {
        "sha256" => SHA256.HashData(data),
        "sha384" => SHA384.HashData(data),
        "sha512" => SHA512.HashData(data),
        "sha3-256" => Run(new Sha3Digest(256), data),
        "sha3-384" => Run(new Sha3Digest(384), data),
        "sha3-512" => Run(new Sha3Digest(512), data),
        "keccak256" => Run(new KeccakDigest(256), data),
        "keccak384" => Run(new KeccakDigest(384), data),
        "keccak512" => Run(new KeccakDigest(512), data),
        _ => null,
    };

    private static byte[] Run(IDigest digest, ReadOnlySpan<byte> data)
    {
        digest.BlockUpdate(data);
        var output = new byte[digest.GetDigestSize()];
        digest.DoFinal(output);
        return output;
    }
}
