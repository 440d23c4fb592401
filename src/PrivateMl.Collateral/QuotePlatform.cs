using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral;

/// <summary>
/// Which collateral a quote needs, read from the PCK leaf certificate it carries (certification data type 5): FMSPC
/// from the SGX extension, CA type from the leaf's issuer ("Intel SGX PCK Platform CA" / "… Processor CA"), TEE from
/// the quote header. Nothing is verified here; a forged quote only gets the wrong collateral, which the verifier rejects.
/// </summary>
public static class QuotePlatform
{
    public static CollateralRequest CollateralRequestFor(TdxQuote quote)
    {
        ArgumentNullException.ThrowIfNull(quote);
        var certification = quote.Signature.CertificationData;
        if (certification.Type != CertificationDataType.PckCertificateChain)
        {
            throw new AttestationException(
                ErrorCode.UnsupportedCertificationDataType,
                $"the quote carries certification data type {(int)certification.Type}, not a PCK certificate chain (5); the FMSPC cannot be read from it");
        }

        using var leaf = FirstCertificate(certification.Data.Span);
        var extension = leaf.Extensions[PckExtensions.SgxExtensionOid]
            ?? throw new AttestationException(ErrorCode.PckExtensionMalformed, "the PCK leaf certificate has no SGX extension (1.2.840.113741.1.13.1)");
        var pck = PckExtensions.Parse(extension.RawData);
        var issuer = leaf.GetNameInfo(X509NameType.SimpleName, forIssuer: true);
        PckCaType ca = issuer.Contains("Platform", StringComparison.OrdinalIgnoreCase) ? PckCaType.Platform
            : issuer.Contains("Processor", StringComparison.OrdinalIgnoreCase) ? PckCaType.Processor
            : throw new AttestationException(ErrorCode.PckChainMalformed, $"the PCK leaf's issuer '{issuer}' is neither a Platform nor a Processor CA");
        return new CollateralRequest(pck.Fmspc.Span, ca, quote.Header.TeeType);
    }

    private static X509Certificate2 FirstCertificate(ReadOnlySpan<byte> pemChain)
    {
        var text = Encoding.ASCII.GetString(pemChain).TrimEnd('\0');
        if (!PemEncoding.TryFind(text, out var fields) || !text[fields.Label].SequenceEqual("CERTIFICATE"))
        {
            throw new AttestationException(ErrorCode.PckChainMalformed, "the quote's PCK certificate chain holds no PEM certificate");
        }

        try
        {
            return X509CertificateLoader.LoadCertificate(Convert.FromBase64String(text[fields.Base64Data]));
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            throw new AttestationException(ErrorCode.PckChainMalformed, "the quote's PCK leaf certificate is not valid DER: " + ex.Message, ex);
        }
    }
}
