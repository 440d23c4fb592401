using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Pck;

/// <summary>Splits a PEM certificate chain into DER certificates (bounded; only whitespace and NUL may follow the last one).</summary>
internal static class PemChain
{
    public static List<byte[]> Decode(ReadOnlySpan<char> pem, ErrorCode code, string what)
    {
        var result = new List<byte[]>(3);
        var rest = pem;
        while (true)
        {
            if (!PemEncoding.TryFind(rest, out var fields))
            {
                break;
            }

            if (!rest[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                throw new AttestationException(code, $"the {what} holds a PEM block that is not a certificate");
            }

            if (result.Count == QuoteLimitsChain)
            {
                throw new AttestationException(code, $"the {what} holds more than {QuoteLimitsChain} certificates");
            }

            // Only whitespace may separate blocks.
            if (!IsBlank(rest[..fields.Location.Start]))
            {
                throw new AttestationException(code, $"the {what} has text between certificates");
            }

            var der = new byte[fields.DecodedDataLength];
            if (!Convert.TryFromBase64Chars(rest[fields.Base64Data], der, out var written) || written != der.Length)
            {
                throw new AttestationException(code, $"the {what} has invalid base64");
            }

            result.Add(der);
            rest = rest[fields.Location.End..];
        }

        if (!IsBlank(rest))
        {
            throw new AttestationException(code, $"the {what} has data after its last certificate");
        }

        if (result.Count == 0)
        {
            throw new AttestationException(code, $"the {what} holds no certificate");
        }

        return result;
    }

    private const int QuoteLimitsChain = PrivateMl.Attestation.Tdx.QuoteLimits.MaxChainCertificates;

    private static bool IsBlank(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (c is not (' ' or '\n' or '\r' or '\t' or '\0'))
            {
                return false;
            }
        }

        return true;
    }
}
