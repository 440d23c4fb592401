using NBitcoin.Secp256k1;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// The secp256k1 operations of the E2EE v2 secp256k1 suite: key checks, public key of a secret, and ECDH whose output is
/// the shared point's raw x-coordinate (e2ee-v2.md §4; not libsecp256k1's default SHA-256 of the compressed point).
/// Two interchangeable implementations give identical bytes: <see cref="Native"/> (libsecp256k1 through Secp256k1.Net,
/// about 10× faster; the package ships the library for linux-x64/arm64/musl, Windows and macOS) and <see cref="Managed"/>
/// (NBitcoin.Secp256k1's C# port), used when the native library cannot be loaded or does not pass the self-check.
/// Public keys are 65-byte uncompressed SEC1 only (<c>04 ‖ x ‖ y</c>); hybrid and compressed forms are refused by both.
/// The gateway's response signer (Ethereum <c>personal_sign</c>) signs through the same backend: recoverable ECDSA with
/// RFC 6979 nonces and low s, byte-identical in both.
/// </summary>
internal abstract class Secp256k1Backend
{
    public const int SecretBytes = 32;
    public const int PublicKeyBytes = 65;
    public const int SharedBytes = 32;
    public const int DigestBytes = 32;

    /// <summary><c>r ‖ s ‖ recovery id</c> (0–3).</summary>
    public const int RecoverableSignatureBytes = 65;

    /// <summary>Environment variable that forces the managed backend when set to <c>managed</c> (bench and diagnosis).</summary>
    public const string EnvironmentVariable = "PRIVATEML_SECP256K1";

    private static readonly Lazy<Secp256k1Backend?> NativeInstance = new(() => NativeSecp256k1Backend.TryCreate(() => new Secp256k1Net.Secp256k1()));

    /// <summary>The C# port (always available).</summary>
    public static Secp256k1Backend Managed { get; } = new ManagedSecp256k1Backend();

    /// <summary>libsecp256k1, or null when it cannot be loaded here or disagrees with <see cref="Managed"/> on the self-check.</summary>
    public static Secp256k1Backend? Native => NativeInstance.Value;

    /// <summary>The backend keys use unless told otherwise: native when available, else managed.</summary>
    public static Secp256k1Backend Default { get; } = Select(Environment.GetEnvironmentVariable(EnvironmentVariable), () => Native);

    /// <summary><c>native</c> or <c>managed</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Picks a backend: <paramref name="setting"/> <c>managed</c> forces the port; otherwise native when it loads.</summary>
    internal static Secp256k1Backend Select(string? setting, Func<Secp256k1Backend?> native)
    {
        if (string.Equals(setting, "managed", StringComparison.OrdinalIgnoreCase))
        {
            return Managed;
        }

        return native() ?? Managed;
    }

    /// <summary>True for 32 bytes encoding 0 &lt; k &lt; n.</summary>
    public abstract bool IsValidSecret(ReadOnlySpan<byte> secret);

    /// <summary>True for a 65-byte <c>04 ‖ x ‖ y</c> point on the curve.</summary>
    public abstract bool IsValidPublicKey(ReadOnlySpan<byte> publicKey);

    /// <summary>Writes the 65-byte uncompressed public key of <paramref name="secret"/>; false for an invalid secret.</summary>
    public abstract bool TryCreatePublicKey(ReadOnlySpan<byte> secret, Span<byte> publicKey);

    /// <summary>Writes the x-coordinate of <c>secret · peer</c>; false for an invalid secret or peer key.</summary>
    public abstract bool TryAgree(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedX);

    /// <summary>
    /// Signs a 32-byte digest: writes <c>r ‖ s ‖ recovery id</c> (65 bytes) with the RFC 6979 nonce and low s, the same
    /// bytes in both backends; false for an invalid secret or a digest that is not 32 bytes.
    /// </summary>
    public abstract bool TrySignRecoverable(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> digest, Span<byte> signature);

    /// <summary>The uncompressed-only rule both backends apply before the library sees a key.</summary>
    protected static bool IsUncompressedShape(ReadOnlySpan<byte> publicKey) => publicKey.Length == PublicKeyBytes && publicKey[0] == 0x04;

    public override string ToString() => $"secp256k1 ({Name})";
}

/// <summary>NBitcoin.Secp256k1 (managed).</summary>
internal sealed class ManagedSecp256k1Backend : Secp256k1Backend
{
    public override string Name => "managed";

    public override bool IsValidSecret(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != SecretBytes || !ECPrivKey.TryCreate(secret, Context.Instance, out var key) || key is null)
        {
            return false;
        }

        key.Dispose();
        return true;
    }

    public override bool IsValidPublicKey(ReadOnlySpan<byte> publicKey) =>
        IsUncompressedShape(publicKey) && ECPubKey.TryCreate(publicKey, Context.Instance, out _, out var key) && key is not null;

    public override bool TryCreatePublicKey(ReadOnlySpan<byte> secret, Span<byte> publicKey)
    {
        if (publicKey.Length < PublicKeyBytes || secret.Length != SecretBytes || !ECPrivKey.TryCreate(secret, Context.Instance, out var key) || key is null)
        {
            return false;
        }

        using (key)
        {
            key.CreatePubKey().WriteToSpan(false, publicKey, out _);
            return true;
        }
    }

    public override bool TryAgree(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedX)
    {
        if (sharedX.Length < SharedBytes || secret.Length != SecretBytes || !IsUncompressedShape(peerPublicKey)
            || !ECPrivKey.TryCreate(secret, Context.Instance, out var key) || key is null)
        {
            return false;
        }

        using (key)
        {
            if (!ECPubKey.TryCreate(peerPublicKey, Context.Instance, out _, out var peer) || peer is null)
            {
                return false;
            }

            Span<byte> compressed = stackalloc byte[33];
            peer.GetSharedPubkey(key).WriteToSpan(true, compressed, out _);
            compressed[1..].CopyTo(sharedX);
            return true;
        }
    }

    public override bool TrySignRecoverable(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> digest, Span<byte> signature)
    {
        if (signature.Length < RecoverableSignatureBytes || digest.Length != DigestBytes || secret.Length != SecretBytes
            || !ECPrivKey.TryCreate(secret, Context.Instance, out var key) || key is null)
        {
            return false;
        }

        using (key)
        {
            if (!key.TrySignRecoverable(digest, out var recoverable) || recoverable is null)
            {
                return false;
            }

            recoverable.WriteToSpanCompact(signature[..64], out var recoveryId);
            signature[64] = (byte)recoveryId;
            return true;
        }
    }
}

/// <summary>
/// libsecp256k1 through Secp256k1.Net. One context per thread (the wrapper object is not documented as thread-safe; a
/// context lives as long as its thread). ECDH passes a hash callback that copies x: the library's default would hash
/// the compressed point with SHA-256.
/// </summary>
internal sealed class NativeSecp256k1Backend : Secp256k1Backend
{
    private const int ParsedKeyBytes = 64;

    private static readonly Secp256k1Net.EcdhHashFunction CopyX = static (output, x, _, _) =>
    {
        x[..SharedBytes].CopyTo(output);
        return 1;
    };

    [ThreadStatic]
    private static Secp256k1Net.Secp256k1? t_context;

    private NativeSecp256k1Backend()
    {
    }

    public override string Name => "native";

    private static Secp256k1Net.Secp256k1 Lib => t_context ??= new Secp256k1Net.Secp256k1();

    /// <summary>
    /// The native backend if <paramref name="probe"/> (making a context) loads the library and the backend agrees with
    /// the managed port on a fixed key pair and agreement; else null.
    /// </summary>
    internal static NativeSecp256k1Backend? TryCreate(Func<Secp256k1Net.Secp256k1> probe)
    {
        try
        {
            probe().Dispose();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or InvalidOperationException or TypeInitializationException or PlatformNotSupportedException)
        {
            return null;
        }

        var backend = new NativeSecp256k1Backend();
        return SelfCheck(backend) ? backend : null;
    }

    public override bool IsValidSecret(ReadOnlySpan<byte> secret) => secret.Length == SecretBytes && Lib.EcSeckeyVerify(secret);

    public override bool IsValidPublicKey(ReadOnlySpan<byte> publicKey)
    {
        Span<byte> parsed = stackalloc byte[ParsedKeyBytes];
        return IsUncompressedShape(publicKey) && Lib.EcPubkeyParse(parsed, publicKey);
    }

    public override bool TryCreatePublicKey(ReadOnlySpan<byte> secret, Span<byte> publicKey)
    {
        if (publicKey.Length < PublicKeyBytes || secret.Length != SecretBytes)
        {
            return false;
        }

        var native = Lib;
        Span<byte> parsed = stackalloc byte[ParsedKeyBytes];
        nuint length = PublicKeyBytes;
        return native.EcPubkeyCreate(parsed, secret)
            && native.EcPubkeySerialize(publicKey, ref length, parsed, Secp256k1Net.Secp256k1EcFlags.Uncompressed)
            && length == PublicKeyBytes;
    }

    public override bool TryAgree(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedX)
    {
        if (sharedX.Length < SharedBytes || secret.Length != SecretBytes || !IsUncompressedShape(peerPublicKey))
        {
            return false;
        }

        var native = Lib;
        Span<byte> parsed = stackalloc byte[ParsedKeyBytes];
        return native.EcPubkeyParse(parsed, peerPublicKey) && native.Ecdh(sharedX[..SharedBytes], parsed, secret, CopyX, IntPtr.Zero);
    }

    public override bool TrySignRecoverable(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> digest, Span<byte> signature)
    {
        if (signature.Length < RecoverableSignatureBytes || digest.Length != DigestBytes || secret.Length != SecretBytes)
        {
            return false;
        }

        var native = Lib;
        Span<byte> recoverable = stackalloc byte[RecoverableSignatureBytes];
        if (!native.EcdsaSignRecoverable(recoverable, digest, secret)
            || !native.EcdsaRecoverableSignatureSerializeCompact(signature[..64], out var recoveryId, recoverable))
        {
            return false;
        }

        signature[64] = (byte)recoveryId;
        return true;
    }

    /// <summary>A fixed key pair, agreement and signature must give the managed port's bytes (catches a wrong or broken library).</summary>
    private static bool SelfCheck(NativeSecp256k1Backend native)
    {
        try
        {
            Span<byte> a = stackalloc byte[SecretBytes];
            Span<byte> b = stackalloc byte[SecretBytes];
            a.Fill(0x11);
            b.Fill(0x22);
            Span<byte> publicB = stackalloc byte[PublicKeyBytes];
            Span<byte> expectedPublicB = stackalloc byte[PublicKeyBytes];
            Span<byte> shared = stackalloc byte[SharedBytes];
            Span<byte> expected = stackalloc byte[SharedBytes];
            Span<byte> signature = stackalloc byte[RecoverableSignatureBytes];
            Span<byte> expectedSignature = stackalloc byte[RecoverableSignatureBytes];
            return native.TryCreatePublicKey(b, publicB)
                && Managed.TryCreatePublicKey(b, expectedPublicB) && publicB.SequenceEqual(expectedPublicB)
                && native.TryAgree(a, publicB, shared)
                && Managed.TryAgree(a, expectedPublicB, expected) && shared.SequenceEqual(expected)
                && native.TrySignRecoverable(a, expected, signature)
                && Managed.TrySignRecoverable(a, expected, expectedSignature) && signature.SequenceEqual(expectedSignature);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or InvalidOperationException)
        {
            return false;
        }
    }
}
