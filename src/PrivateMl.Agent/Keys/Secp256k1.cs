using System.Security.Cryptography;
using NBitcoin.Secp256k1;

namespace PrivateMl.Agent.Keys;

/// <summary>
/// secp256k1 operations dstack uses, behind NBitcoin.Secp256k1 (RFC 6979 nonces, low-s signatures). Recoverable
/// signatures are <c>r ‖ s ‖ recid</c> with recid 0 or 1, as dstack writes them.
/// </summary>
internal static class Secp256k1
{
    public const int PrivateKeySize = 32;
    public const int CompressedPublicKeySize = 33;
    public const int CompactSignatureSize = 64;
    public const int RecoverableSignatureSize = 65;

    /// <summary>True when <paramref name="privateKey"/> is a valid scalar (32 bytes, 0 &lt; d &lt; n).</summary>
    public static bool IsValidPrivateKey(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != PrivateKeySize || !ECPrivKey.TryCreate(privateKey, out var key))
        {
            return false;
        }

        key.Dispose();
        return true;
    }

    public static byte[] CompressedPublicKey(ReadOnlySpan<byte> privateKey)
    {
        using var key = CreateKey(privateKey);
        return key.CreatePubKey().ToBytes(compressed: true);
    }

    /// <summary>65-byte recoverable signature over a 32-byte digest.</summary>
    public static byte[] SignRecoverable(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> digest32)
    {
        CheckDigest(digest32);
        using var key = CreateKey(privateKey);
        if (!key.TrySignRecoverable(digest32, out var signature) || signature is null)
        {
            throw new CryptographicException("secp256k1 signing failed");
        }

        var output = new byte[RecoverableSignatureSize];
        signature.WriteToSpanCompact(output.AsSpan(0, CompactSignatureSize), out var recoveryId);
        output[CompactSignatureSize] = (byte)recoveryId;
        return output;
    }

    /// <summary>64-byte <c>r ‖ s</c> signature over a 32-byte digest.</summary>
    public static byte[] SignCompact(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> digest32)
    {
        CheckDigest(digest32);
        using var key = CreateKey(privateKey);
        var signature = key.SignECDSARFC6979(digest32);
        var output = new byte[CompactSignatureSize];
        signature.WriteCompactToSpan(output);
        return output;
    }

    /// <summary>Verifies a 64-byte compact signature; false for any malformed input.</summary>
    public static bool VerifyCompact(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> digest32, ReadOnlySpan<byte> signature64)
    {
        if (digest32.Length != 32 || signature64.Length != CompactSignatureSize)
        {
            return false;
        }

        if (!ECPubKey.TryCreate(publicKey, Context.Instance, out _, out var pub) || pub is null)
        {
            return false;
        }

        if (!SecpECDSASignature.TryCreateFromCompact(signature64, out var signature) || signature is null)
        {
            return false;
        }

        return pub.SigVerify(signature, digest32);
    }

    /// <summary>Recovers the compressed public key from a 65-byte signature (recid 0–3, or 27–30); null if impossible.</summary>
    public static byte[]? Recover(ReadOnlySpan<byte> digest32, ReadOnlySpan<byte> signature65)
    {
        if (digest32.Length != 32 || signature65.Length != RecoverableSignatureSize)
        {
            return null;
        }

        int recoveryId = signature65[64];
        if (recoveryId >= 27)
        {
            recoveryId -= 27;
        }

        if (recoveryId is < 0 or > 3
            || !SecpRecoverableECDSASignature.TryCreateFromCompact(signature65[..64], recoveryId, out var signature)
            || signature is null
            || !ECPubKey.TryRecover(Context.Instance, signature, digest32, out var pub)
            || pub is null)
        {
            return null;
        }

        return pub.ToBytes(compressed: true);
    }

    private static ECPrivKey CreateKey(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != PrivateKeySize || !ECPrivKey.TryCreate(privateKey, out var key) || key is null)
        {
            throw new ArgumentException("not a valid secp256k1 private key", nameof(privateKey));
        }

        return key;
    }

    private static void CheckDigest(ReadOnlySpan<byte> digest32)
    {
        if (digest32.Length != 32)
        {
            throw new ArgumentException("a 32-byte digest is required", nameof(digest32));
        }
    }
}
