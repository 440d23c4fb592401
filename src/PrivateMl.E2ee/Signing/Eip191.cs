using System.Globalization;
using System.Text;
using NBitcoin.Secp256k1;
using Org.BouncyCastle.Crypto.Digests;

namespace PrivateMl.E2ee.Signing;

/// <summary>
/// EIP-191 <c>personal_sign</c>, shared by the gateway (which signs) and the client (which verifies): the digest is
/// Keccak-256 of <c>"\x19Ethereum Signed Message:\n" + decimal byte length + message</c> (ethers <c>hashMessage</c>),
/// the signature is <c>r ‖ s ‖ v</c> (65 bytes, v the recovery id or it + 27), and an address is the last 20 bytes of
/// Keccak-256 of the uncompressed public key without its <c>04</c> prefix.
/// </summary>
public static class Eip191
{
    /// <summary>Length of an Ethereum address in bytes.</summary>
    public const int AddressBytes = 20;

    /// <summary>Length of a recoverable signature (<c>r ‖ s ‖ v</c>) in bytes.</summary>
    public const int SignatureBytes = 65;

    /// <summary>Keccak-256 (the original, not SHA3-256) of <paramref name="data"/>.</summary>
    public static byte[] Keccak256(ReadOnlySpan<byte> data)
    {
        var digest = new KeccakDigest(256);
        digest.BlockUpdate(data);
        var output = new byte[32];
        digest.DoFinal(output);
        return output;
    }

    /// <summary>The digest <c>personal_sign</c> signs for <paramref name="message"/>.</summary>
    public static byte[] PersonalMessageDigest(ReadOnlySpan<byte> message)
    {
        var prefix = Encoding.ASCII.GetBytes("\u0019Ethereum Signed Message:\n" + message.Length.ToString(CultureInfo.InvariantCulture));
        var digest = new KeccakDigest(256);
        digest.BlockUpdate(prefix);
        digest.BlockUpdate(message);
        var output = new byte[32];
        digest.DoFinal(output);
        return output;
    }

    /// <summary>The 20 address bytes of a 65-byte uncompressed SEC1 public key (<c>04 ‖ x ‖ y</c>).</summary>
    public static byte[] AddressOf(ReadOnlySpan<byte> uncompressedPublicKey)
    {
        if (uncompressedPublicKey.Length != 65 || uncompressedPublicKey[0] != 0x04)
        {
            throw new ArgumentException("not a 65-byte uncompressed public key", nameof(uncompressedPublicKey));
        }

        return Keccak256(uncompressedPublicKey[1..])[^AddressBytes..];
    }

    /// <summary>
    /// The 20 address bytes of the key that made <paramref name="signature"/> (<c>r ‖ s ‖ v</c>) over
    /// <paramref name="message"/>, or null when the signature is malformed or recovers no key.
    /// </summary>
    public static byte[]? RecoverAddress(ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureBytes)
        {
            return null;
        }

        var v = signature[64] >= 27 ? signature[64] - 27 : signature[64];
        if (v is < 0 or > 3 || !SecpRecoverableECDSASignature.TryCreateFromCompact(signature[..64], v, out var recoverable) || recoverable is null)
        {
            return null;
        }

        if (!ECPubKey.TryRecover(Context.Instance, recoverable, PersonalMessageDigest(message), out var publicKey) || publicKey is null)
        {
            return null;
        }

        return AddressOf(publicKey.ToBytes(compressed: false));
    }
}
