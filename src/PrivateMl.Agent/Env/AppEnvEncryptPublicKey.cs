using System.Buffers;
using System.Globalization;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Env;

/// <summary>
/// The KMS answer to <c>GetAppEnvEncryptPubKey</c> (dstack.md §7.1, §9.1): the app's X25519 env-encryption public key,
/// the legacy <c>signature</c>, and (dstack HEAD) <c>timestamp</c> with <c>signature_v1</c>. JSON as dstack's pRPC
/// writes it: <c>{"public_key":"&lt;hex&gt;","signature":"&lt;hex&gt;","timestamp":N,"signature_v1":"&lt;hex&gt;"}</c>.
/// </summary>
public sealed class AppEnvEncryptPublicKey
{
    /// <summary>Largest response body a client parses.</summary>
    public const int MaxJsonBytes = 64 * 1024;

    /// <summary>Oldest timestamped signature accepted by default (as the dstack SDKs: 300 s).</summary>
    public static readonly TimeSpan DefaultMaxAge = TimeSpan.FromSeconds(300);

    /// <summary>How far in the future a timestamp may lie (clock skew; as the dstack SDKs: 60 s).</summary>
    public static readonly TimeSpan MaxFutureSkew = TimeSpan.FromSeconds(60);

    public AppEnvEncryptPublicKey(byte[] publicKey, byte[] signature, ulong? timestamp = null, byte[]? signatureV1 = null)
    {
        PublicKey = publicKey ?? throw new ArgumentNullException(nameof(publicKey));
        Signature = signature ?? throw new ArgumentNullException(nameof(signature));
        Timestamp = timestamp;
        SignatureV1 = signatureV1;
    }

    /// <summary>X25519 public key to encrypt to (32 bytes when well-formed).</summary>
    public byte[] PublicKey { get; }

    /// <summary>Legacy signature (65 bytes when present).</summary>
    public byte[] Signature { get; }

    /// <summary>Unix seconds covered by <see cref="SignatureV1"/>; null from a KMS that predates it.</summary>
    public ulong? Timestamp { get; }

    /// <summary>Timestamped signature; null from a KMS that predates it.</summary>
    public byte[]? SignatureV1 { get; }

    /// <summary>
    /// What a KMS serves: the public key of <paramref name="envCryptKey"/>, both signatures by
    /// <paramref name="rootK256Key"/>, the timestamp taken from <paramref name="now"/>.
    /// </summary>
    public static AppEnvEncryptPublicKey Create(ReadOnlySpan<byte> rootK256Key, ReadOnlySpan<byte> appId, ReadOnlySpan<byte> envCryptKey, DateTimeOffset now)
    {
        var publicKey = EncryptedEnv.PublicKeyOf(envCryptKey);
        var timestamp = checked((ulong)now.ToUnixTimeSeconds());
        return new AppEnvEncryptPublicKey(
            publicKey,
            EnvEncryptPublicKeySignature.Sign(rootK256Key, appId, publicKey),
            timestamp,
            EnvEncryptPublicKeySignature.SignV1(rootK256Key, appId, timestamp, publicKey));
    }

    /// <summary>The pRPC JSON body (compact; fields absent when null).</summary>
    public byte[] ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("public_key", Convert.ToHexStringLower(PublicKey));
            writer.WriteString("signature", Convert.ToHexStringLower(Signature));
            if (Timestamp is { } timestamp)
            {
                writer.WriteNumber("timestamp", timestamp);
            }

            if (SignatureV1 is { } signatureV1)
            {
                writer.WriteString("signature_v1", Convert.ToHexStringLower(signatureV1));
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Parses a KMS response. Untrusted input: anything malformed (not JSON, bad hex, a key that is not 32 bytes, a
    /// body over <see cref="MaxJsonBytes"/>) is an <see cref="AttestationException"/> with
    /// <see cref="ErrorCode.MalformedInput"/>.
    /// </summary>
    public static AppEnvEncryptPublicKey Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxJsonBytes)
        {
            throw Malformed($"the KMS response is {json.Length} bytes; at most {MaxJsonBytes} are accepted");
        }

        try
        {
            using var document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 4 });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("the KMS response is not a JSON object");
            }

            var publicKey = Hex(root, "public_key") ?? throw Malformed("the KMS response has no public_key");
            if (publicKey.Length != EncryptedEnv.KeySize)
            {
                throw Malformed($"public_key is {publicKey.Length} bytes; an X25519 key is {EncryptedEnv.KeySize}");
            }

            ulong? timestamp = null;
            if (root.TryGetProperty("timestamp", out var time) && time.ValueKind != JsonValueKind.Null)
            {
                timestamp = time.ValueKind switch
                {
                    JsonValueKind.Number when time.TryGetUInt64(out var n) => n,
                    JsonValueKind.String when ulong.TryParse(time.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
                    _ => throw Malformed("timestamp is not an unsigned integer"),
                };
            }

            var signatureV1 = Hex(root, "signature_v1");
            return new AppEnvEncryptPublicKey(
                publicKey,
                Hex(root, "signature") ?? [],
                timestamp,
                signatureV1 is { Length: > 0 } ? signatureV1 : null);
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.MalformedInput, $"the KMS response is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>
    /// Checks that a KMS root key in <paramref name="trustedSigners"/> (33-byte compressed secp256k1 keys) signed this
    /// public key for <paramref name="appId"/>. A timestamped signature, when present, is the one checked (and must
    /// be no older than <paramref name="maxAge"/>, default 300 s, and at most 60 s ahead of
    /// <paramref name="now"/>); a KMS that only sends the legacy signature is checked on that. Never throws for
    /// untrusted input; the result names the failure.
    /// </summary>
    public EnvPublicKeyVerification Verify(ReadOnlySpan<byte> appId, IEnumerable<byte[]> trustedSigners, DateTimeOffset now, TimeSpan? maxAge = null)
    {
        ArgumentNullException.ThrowIfNull(trustedSigners);
        if (PublicKey.Length != EncryptedEnv.KeySize)
        {
            return EnvPublicKeyVerification.Fail(null, false, ErrorCode.MalformedInput, $"public key is {PublicKey.Length} bytes, not {EncryptedEnv.KeySize}");
        }

        byte[]? signer;
        var timestamped = SignatureV1 is not null && Timestamp is not null;
        if (timestamped)
        {
            var timestamp = Timestamp!.Value;
            signer = EnvEncryptPublicKeySignature.RecoverV1(appId, timestamp, PublicKey, SignatureV1);
            if (signer is null)
            {
                return EnvPublicKeyVerification.Fail(null, true, ErrorCode.EnvPublicKeySignatureInvalid, "signature_v1 recovers no signer");
            }

            var age = now.ToUnixTimeSeconds() - (decimal)timestamp;
            if (age < -(decimal)MaxFutureSkew.TotalSeconds)
            {
                return EnvPublicKeyVerification.Fail(signer, true, ErrorCode.EnvPublicKeySignatureStale, $"the signature's timestamp {timestamp} is {-age} s in the future");
            }

            var limit = maxAge ?? DefaultMaxAge;
            if (age > (decimal)limit.TotalSeconds)
            {
                return EnvPublicKeyVerification.Fail(signer, true, ErrorCode.EnvPublicKeySignatureStale, $"the signature is {age} s old; at most {limit.TotalSeconds} s is accepted");
            }
        }
        else
        {
            signer = EnvEncryptPublicKeySignature.Recover(appId, PublicKey, Signature);
            if (signer is null)
            {
                return EnvPublicKeyVerification.Fail(null, false, ErrorCode.EnvPublicKeySignatureInvalid, "the KMS signature is missing or recovers no signer");
            }
        }

        foreach (var trusted in trustedSigners)
        {
            if (trusted.AsSpan().SequenceEqual(signer))
            {
                return new EnvPublicKeyVerification(true, signer, timestamped, null, null);
            }
        }

        return EnvPublicKeyVerification.Fail(signer, timestamped, ErrorCode.EnvPublicKeySignerUntrusted,
            $"the public key is signed by {Convert.ToHexStringLower(signer)}, which is not a trusted KMS key");
    }

    private static byte[]? Hex(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (element.ValueKind != JsonValueKind.String)
        {
            throw Malformed($"{name} is not a hex string");
        }

        var text = element.GetString()!;
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        var bytes = new byte[text.Length / 2];
        if (text.Length % 2 != 0 || Convert.FromHexString(text, bytes, out _, out _) != OperationStatus.Done)
        {
            throw Malformed($"{name} is not a hex string");
        }

        return bytes;
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.MalformedInput, message);
}

/// <summary>The outcome of <see cref="AppEnvEncryptPublicKey.Verify"/>: accepted, or the reason not, with the recovered signer when there is one.</summary>
public sealed record EnvPublicKeyVerification(bool Accepted, byte[]? Signer, bool Timestamped, ErrorCode? Code, string? Reason)
{
    internal static EnvPublicKeyVerification Fail(byte[]? signer, bool timestamped, ErrorCode code, string reason) =>
        new(false, signer, timestamped, code, reason);
}
