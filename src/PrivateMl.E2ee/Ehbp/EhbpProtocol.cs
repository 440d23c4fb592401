using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// Constants of Tinfoil's Encrypted HTTP Body Protocol (EHBP, tinfoilsh/encrypted-http-body-protocol SPEC §3–§4):
/// HPKE base mode X25519 / HKDF-SHA256 / AES-256-GCM, empty AAD, bodies as length-prefixed frames.
/// </summary>
public static class EhbpProtocol
{
    public const string KeysPath = "/.well-known/hpke-keys";
    public const string KeysMediaType = "application/ohttp-keys";
    public const string EncapsulatedKeyHeader = "Ehbp-Encapsulated-Key";
    public const string ResponseNonceHeader = "Ehbp-Response-Nonce";
    public const string ProblemMediaType = "application/problem+json";
    public const string KeyConfigProblemType = "urn:ietf:params:ehbp:error:key-config";

    /// <summary>
    /// The <c>algo</c> of the EHBP key's entry in an attested ACI keyset's <c>e2ee_public_keys</c> (public key: 64
    /// lowercase hex). ACI verifiers ignore it as an unknown algorithm; EHBP clients take the key only from it.
    /// </summary>
    public const string KeysetAlgorithm = "ehbp-hpke-x25519-hkdf-sha256-aes-256-gcm";

    /// <summary>HPKE info of the request context.</summary>
    public static ReadOnlySpan<byte> RequestInfo => "ehbp request"u8;

    /// <summary>Exporter context of the response secret.</summary>
    public static ReadOnlySpan<byte> ResponseExportLabel => "ehbp response"u8;

    public const int ResponseSecretLength = 32;

    /// <summary><c>max(Nn, Nk)</c> = 32 bytes.</summary>
    public const int ResponseNonceLength = 32;

    /// <summary>The frame header: ciphertext length as a big-endian uint32.</summary>
    public const int FrameHeaderLength = 4;

    /// <summary>Plaintext per request frame, as the Go reference client seals (8 KiB).</summary>
    public const int DefaultPlaintextChunkBytes = 8 * 1024;

    /// <summary>Parses a 32-byte header value written as exactly 64 lowercase hex characters.</summary>
    internal static byte[] ParseHex32(string? value, string headerName)
    {
        if (value is not { Length: 64 } || !value.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f'))
        {
            throw new AttestationException(ErrorCode.EhbpHeaderMalformed, $"{headerName} must be 64 lowercase hex characters");
        }

        return Convert.FromHexString(value);
    }
}
