using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.Tee.Simulator;

/// <summary>Writes TDX quote v4 (TD 1.0 body) bytes in the layout of real quotes (research/tdx-dcap.md §1.1–1.5).</summary>
internal static class SimulatedQuoteWriter
{
    public static byte[] Write(
        SimulatedPki pki,
        SimulatedQuotingEnclave qe,
        TdProfile profile,
        ReadOnlySpan<byte> rtmr3,
        ReadOnlySpan<byte> reportData,
        QuoteDefects defects)
    {
        profile = defects.BodyProfile ?? profile;
        profile.Validate();

        // Header ‖ TD report body: the signed region.
        var signed = new byte[QuoteLayout.SignedRegionSize];
        var header = signed.AsSpan(0, QuoteLayout.HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header[QuoteLayout.VersionOffset..], defects.Version ?? QuoteLayout.Version4);
        BinaryPrimitives.WriteUInt16LittleEndian(
            header[QuoteLayout.AttestationKeyTypeOffset..], defects.AttestationKeyType ?? QuoteLayout.AttestationKeyTypeEcdsaP256);
        BinaryPrimitives.WriteUInt32LittleEndian(header[QuoteLayout.TeeTypeOffset..], defects.TeeType ?? QuoteLayout.TeeTypeTdx);
        var vendor = defects.QeVendorId is { } v ? v.Span : QuoteLayout.IntelQeVendorId;
        vendor[..Math.Min(16, vendor.Length)].CopyTo(header.Slice(QuoteLayout.QeVendorIdOffset, 16));
        qe.QeId.Span.CopyTo(header.Slice(QuoteLayout.UserDataOffset, 16));

        var body = signed.AsSpan(QuoteLayout.HeaderSize, QuoteLayout.TdReportBodySize);
        profile.TeeTcbSvn.Span.CopyTo(body[QuoteLayout.TeeTcbSvn..]);
        profile.MrSeam.Span.CopyTo(body[QuoteLayout.MrSeam..]);
        profile.MrSignerSeam.Span.CopyTo(body[QuoteLayout.MrSignerSeam..]);
        profile.SeamAttributes.Span.CopyTo(body[QuoteLayout.SeamAttributes..]);
        profile.TdAttributes.Span.CopyTo(body[QuoteLayout.TdAttributes..]);
        profile.Xfam.Span.CopyTo(body[QuoteLayout.Xfam..]);
        profile.MrTd.Span.CopyTo(body[QuoteLayout.MrTd..]);
        profile.MrConfigId.Span.CopyTo(body[QuoteLayout.MrConfigId..]);
        profile.MrOwner.Span.CopyTo(body[QuoteLayout.MrOwner..]);
        profile.MrOwnerConfig.Span.CopyTo(body[QuoteLayout.MrOwnerConfig..]);
        profile.Rtmr0.Span.CopyTo(body[QuoteLayout.Rtmr0..]);
        profile.Rtmr1.Span.CopyTo(body[QuoteLayout.Rtmr1..]);
        profile.Rtmr2.Span.CopyTo(body[QuoteLayout.Rtmr2..]);
        rtmr3.CopyTo(body[QuoteLayout.Rtmr3..]);
        reportData.CopyTo(body[QuoteLayout.ReportData..]);

        // Quote signature by the attestation key.
        var attestationPublicKey = (defects.AttestationPublicKey ?? qe.AttestationPublicKey).ToArray();
        byte[] quoteSignature;
        if (defects.SignQuoteWithUnrelatedKey)
        {
            using var unrelated = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            quoteSignature = unrelated.SignData(signed, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        else
        {
            quoteSignature = qe.SignWithAttestationKey(signed);
        }

        if (defects.CorruptQuoteSignature)
        {
            quoteSignature[40] ^= 0x01;
        }

        // QE report, signed by the PCK key, bound to the attestation key.
        var authData = (defects.QeAuthData ?? qe.Options.AuthData).ToArray();
        var qeReport = qe.BuildReport(pki.Platform, defects, attestationPublicKey, authData);
        byte[] qeReportSignature;
        if (defects.SignQeReportWithUnrelatedKey)
        {
            using var unrelated = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            qeReportSignature = unrelated.SignData(qeReport, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        else
        {
            qeReportSignature = pki.SignWithPckKey(qeReport);
        }

        if (defects.CorruptQeReportSignature)
        {
            qeReportSignature[40] ^= 0x01;
        }

        // Inner certification data: PEM chain leaf first, then one NUL byte (as in every real quote).
        byte[] inner;
        if (defects.CertificationData is { } raw)
        {
            inner = raw.ToArray();
        }
        else
        {
            var pem = Encoding.ASCII.GetBytes(defects.PckChainPem ?? pki.PckCertificateChainPem);
            inner = defects.OmitPemTerminator ? pem : [.. pem, 0];
        }

        var qeCertificationData = new List<byte>(QuoteLayout.SgxReportBodySize + 64 + 2 + authData.Length + 6 + inner.Length);
        qeCertificationData.AddRange(qeReport);
        qeCertificationData.AddRange(qeReportSignature);
        QuoteLayout.WriteU16(qeCertificationData, authData.Length + defects.QeAuthDataSizeDelta);
        qeCertificationData.AddRange(authData);
        QuoteLayout.WriteU16(qeCertificationData, defects.InnerCertificationDataType ?? QuoteLayout.CertificationDataPckChain);
        QuoteLayout.WriteU32(qeCertificationData, inner.Length + defects.InnerCertificationDataSizeDelta);
        qeCertificationData.AddRange(inner);

        var signatureData = new List<byte>(64 + 64 + 6 + qeCertificationData.Count);
        signatureData.AddRange(quoteSignature);
        signatureData.AddRange(attestationPublicKey);
        QuoteLayout.WriteU16(signatureData, defects.OuterCertificationDataType ?? QuoteLayout.CertificationDataQeReport);
        QuoteLayout.WriteU32(signatureData, qeCertificationData.Count + defects.OuterCertificationDataSizeDelta);
        signatureData.AddRange(qeCertificationData);

        var quote = new List<byte>(signed.Length + 4 + signatureData.Count + defects.TrailingBytes.Length);
        quote.AddRange(signed);
        QuoteLayout.WriteU32(quote, signatureData.Count + defects.SignatureDataLengthDelta);
        quote.AddRange(signatureData);
        quote.AddRange(defects.TrailingBytes.Span);

        var bytes = quote.ToArray();
        return defects.TruncateTo is { } length ? bytes[..Math.Clamp(length, 0, bytes.Length)] : bytes;
    }
}
