using System.Buffers.Binary;
using PrivateMl.Agent.Keys;

namespace PrivateMl.Agent.Env;

/// <summary>
/// The KMS's signature over an app's env-encryption public key (dstack.md §7.1): a 65-byte recoverable secp256k1
/// signature (<c>r ‖ s ‖ recid</c>, RFC 6979, low-s) by the KMS root k256 key over
/// <list type="bullet">
/// <item>legacy <c>signature</c>: <c>Keccak-256("dstack-env-encrypt-pubkey:" ‖ app_id ‖ public_key)</c>;</item>
/// <item>timestamped <c>signature_v1</c> (dstack HEAD, npm SDK 0.5.8 <c>verifyEnvEncryptPublicKey</c>):
/// <c>Keccak-256("dstack-env-encrypt-pubkey:" ‖ app_id ‖ u64_be(timestamp) ‖ public_key)</c>.</item>
/// </list>
/// A client recovers the signer and compares it with the KMS root keys it trusts (<c>GetMeta.k256_pubkey</c>).
/// </summary>
public static class EnvEncryptPublicKeySignature
{
    public const int SignatureSize = 65;
    public const int SignerPublicKeySize = 33;

    private static ReadOnlySpan<byte> Prefix => "dstack-env-encrypt-pubkey:"u8;

    /// <summary>Keccak-256 of the legacy message.</summary>
    public static byte[] Digest(ReadOnlySpan<byte> appId, ReadOnlySpan<byte> publicKey) =>
        Hashes.Keccak256([.. Prefix, .. appId, .. publicKey]);

    /// <summary>Keccak-256 of the timestamped (v1) message.</summary>
    public static byte[] DigestV1(ReadOnlySpan<byte> appId, ulong timestamp, ReadOnlySpan<byte> publicKey)
    {
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(time, timestamp);
        return Hashes.Keccak256([.. Prefix, .. appId, .. time, .. publicKey]);
    }

    /// <summary>The legacy <c>signature</c> field, made with the KMS root k256 scalar.</summary>
    /// <exception cref="ArgumentException"><paramref name="rootK256Key"/> is not a secp256k1 scalar.</exception>
    public static byte[] Sign(ReadOnlySpan<byte> rootK256Key, ReadOnlySpan<byte> appId, ReadOnlySpan<byte> publicKey) =>
        Secp256k1.SignRecoverable(rootK256Key, Digest(appId, publicKey));

    /// <summary>The <c>signature_v1</c> field for <paramref name="timestamp"/> (Unix seconds).</summary>
    public static byte[] SignV1(ReadOnlySpan<byte> rootK256Key, ReadOnlySpan<byte> appId, ulong timestamp, ReadOnlySpan<byte> publicKey) =>
        Secp256k1.SignRecoverable(rootK256Key, DigestV1(appId, timestamp, publicKey));

    /// <summary>
    /// The signer's compressed (33-byte) public key recovered from a legacy signature; null when the signature is
    /// not 65 bytes or recovers no key. recid may be 0–3 or 27–30, as the dstack SDKs accept.
    /// </summary>
    public static byte[]? Recover(ReadOnlySpan<byte> appId, ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> signature) =>
        signature.Length == SignatureSize ? Secp256k1.Recover(Digest(appId, publicKey), signature) : null;

    /// <summary>As <see cref="Recover"/>, for a timestamped (v1) signature.</summary>
    public static byte[]? RecoverV1(ReadOnlySpan<byte> appId, ulong timestamp, ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> signature) =>
        signature.Length == SignatureSize ? Secp256k1.Recover(DigestV1(appId, timestamp, publicKey), signature) : null;

    /// <summary>Compressed public key of a root k256 scalar (what a client lists as a trusted KMS signer).</summary>
    public static byte[] SignerPublicKey(ReadOnlySpan<byte> rootK256Key) => Secp256k1.CompressedPublicKey(rootK256Key);
}
