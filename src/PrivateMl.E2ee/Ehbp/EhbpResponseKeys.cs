using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// EHBP SPEC §4.4 response keys (as OHTTP RFC 9458 §4.4, other labels): <c>prk = HKDF-Extract(salt = enc ‖
/// response_nonce, ikm = secret)</c>; <c>key = HKDF-Expand(prk, "key", 32)</c>; <c>nonce_base = HKDF-Expand(prk,
/// "nonce", 12)</c>, where <c>secret = ctx.Export("ehbp response", 32)</c>. Plain HKDF-SHA256, not HPKE-labelled.
/// </summary>
public static class EhbpResponseKeys
{
    public static (byte[] Key, byte[] NonceBase) Derive(ReadOnlySpan<byte> exportedSecret, ReadOnlySpan<byte> requestEnc, ReadOnlySpan<byte> responseNonce)
    {
        var salt = new byte[requestEnc.Length + responseNonce.Length];
        requestEnc.CopyTo(salt);
        responseNonce.CopyTo(salt.AsSpan(requestEnc.Length));
        var prk = new byte[32];
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA256, exportedSecret, salt, prk);
            var key = new byte[32];
            var nonceBase = new byte[12];
            HKDF.Expand(HashAlgorithmName.SHA256, prk, key, "key"u8);
            HKDF.Expand(HashAlgorithmName.SHA256, prk, nonceBase, "nonce"u8);
            return (key, nonceBase);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
        }
    }

    /// <summary>
    /// The response chunk cipher for an <c>Ehbp-Response-Nonce</c> header value (counter from 0): a missing header is
    /// <see cref="ErrorCode.EhbpResponseNonceMissing"/>, a malformed one <see cref="ErrorCode.EhbpHeaderMalformed"/>.
    /// </summary>
    internal static EhbpChunkCipher Open(ReadOnlySpan<byte> exportedSecret, ReadOnlySpan<byte> requestEnc, string? responseNonceHeader)
    {
        if (responseNonceHeader is null)
        {
            throw new AttestationException(ErrorCode.EhbpResponseNonceMissing, $"the response carries no {EhbpProtocol.ResponseNonceHeader} header");
        }

        return Cipher(exportedSecret, requestEnc, EhbpProtocol.ParseHex32(responseNonceHeader, EhbpProtocol.ResponseNonceHeader));
    }

    /// <summary>A chunk cipher for the response body.</summary>
    public static EhbpChunkCipher Cipher(ReadOnlySpan<byte> exportedSecret, ReadOnlySpan<byte> requestEnc, ReadOnlySpan<byte> responseNonce)
    {
        var (key, nonceBase) = Derive(exportedSecret, requestEnc, responseNonce);
        try
        {
            return new EhbpChunkCipher(key, nonceBase);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
