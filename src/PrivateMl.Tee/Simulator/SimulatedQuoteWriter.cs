using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using PrivateMl.Attestation.Tdx;
using L = PrivateMl.Attestation.Tdx.QuoteLayout;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// Writes TDX quote v4 (TD 1.0 body) bytes in the layout of real quotes (research/tdx-dcap.md §1.1–1.5). The fields go
/// through Attestation's quote model and writer (<see cref="TdxQuote.ToBytes"/>); the defects no well-formed model
/// carries (another version, another outer certification data type, declared lengths that lie, truncation) are then
/// written over those bytes, the version before the quote is signed so that its signature still holds.
/// </summary>
internal static class SimulatedQuoteWriter
{
    // Fixed offsets of the v4 signature data with a TD 1.0 body.
    private const int SignedRegionSize = L.HeaderSize + L.Td10ReportBodySize;
    private const int QuoteSignatureOffset = SignedRegionSize + L.SignatureDataLengthSize;
    private const int OuterCertificationDataOffset = QuoteSignatureOffset + L.EcdsaSignatureSize + L.EcdsaPublicKeySize;
    private const int QeAuthDataSizeOffset = OuterCertificationDataOffset + L.CertificationDataHeaderSize + L.SgxReportBodySize + L.EcdsaSignatureSize;

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

        // QE report, signed by the PCK key, bound to the attestation key.
        var attestationPublicKey = (defects.AttestationPublicKey ?? qe.AttestationPublicKey).ToArray();
        var authData = (defects.QeAuthData ?? qe.Options.AuthData).ToArray();
        var qeReport = qe.BuildReport(pki.Platform, defects, attestationPublicKey, authData);
        var qeReportBytes = qeReport.ToBytes();
        var qeReportSignature = defects.SignQeReportWithUnrelatedKey ? SignWithUnrelatedKey(qeReportBytes) : pki.SignWithPckKey(qeReportBytes);
        if (defects.CorruptQeReportSignature)
        {
            qeReportSignature[40] ^= 0x01;
        }

        var vendor = defects.QeVendorId ?? L.IntelQeVendorId.ToArray();
        var quote = new TdxQuote
        {
            Header = new QuoteHeader
            {
                // A version defect is written over the bytes below: the model's version decides the layout.
                Version = 4,
                AttestationKeyType = (AttestationKeyType)(defects.AttestationKeyType ?? (ushort)AttestationKeyType.EcdsaP256),
                TeeType = (TeeType)(defects.TeeType ?? (uint)TeeType.Tdx),
                Reserved = default,
                QeVendorId = vendor[..Math.Min(L.QeVendorIdSize, vendor.Length)],
                UserData = qe.QeId,
            },
            BodyKind = ReportBodyKind.Td10,
            TdReport = new TdReportBody
            {
                TeeTcbSvn = profile.TeeTcbSvn,
                MrSeam = profile.MrSeam,
                MrSignerSeam = profile.MrSignerSeam,
                SeamAttributes = profile.SeamAttributes,
                TdAttributes = profile.TdAttributes,
                Xfam = profile.Xfam,
                MrTd = profile.MrTd,
                MrConfigId = profile.MrConfigId,
                MrOwner = profile.MrOwner,
                MrOwnerConfig = profile.MrOwnerConfig,
                Rtmr0 = profile.Rtmr0,
                Rtmr1 = profile.Rtmr1,
                Rtmr2 = profile.Rtmr2,
                Rtmr3 = rtmr3.ToArray(),
                ReportData = reportData.ToArray(),
            },
            Signature = new QuoteSignatureData
            {
                QuoteSignature = new byte[L.EcdsaSignatureSize], // signed below, once the signed region is final
                AttestationPublicKey = attestationPublicKey,
                QeReportBytes = qeReportBytes,
                QeReport = qeReport,
                QeReportSignature = qeReportSignature,
                QeAuthData = authData,
                CertificationData = new CertificationData
                {
                    Type = (CertificationDataType)(defects.InnerCertificationDataType ?? (ushort)CertificationDataType.PckCertificateChain),
                    Data = InnerCertificationData(pki, defects),
                },
            },
            TrailingBytes = defects.TrailingBytes,
        };

        var bytes = quote.ToBytes();
        var s = bytes.AsSpan();
        if (defects.Version is { } version)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(s[L.VersionOffset..], version);
        }

        // Quote signature by the attestation key over header ‖ TD report body.
        var signed = bytes[..SignedRegionSize];
        var quoteSignature = defects.SignQuoteWithUnrelatedKey ? SignWithUnrelatedKey(signed) : qe.SignWithAttestationKey(signed);
        if (defects.CorruptQuoteSignature)
        {
            quoteSignature[40] ^= 0x01;
        }

        quoteSignature.CopyTo(s[QuoteSignatureOffset..]);

        // Declared lengths and types that lie (declared = actual + delta).
        AddToU32(s[SignedRegionSize..], defects.SignatureDataLengthDelta);
        if (defects.OuterCertificationDataType is { } outerType)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(s[OuterCertificationDataOffset..], outerType);
        }

        AddToU32(s[(OuterCertificationDataOffset + 2)..], defects.OuterCertificationDataSizeDelta);
        var qeAuthDataSize = s[QeAuthDataSizeOffset..];
        BinaryPrimitives.WriteUInt16LittleEndian(qeAuthDataSize, unchecked((ushort)(BinaryPrimitives.ReadUInt16LittleEndian(qeAuthDataSize) + defects.QeAuthDataSizeDelta)));
        AddToU32(s[(QeAuthDataSizeOffset + L.QeAuthDataSizeSize + authData.Length + 2)..], defects.InnerCertificationDataSizeDelta);

        return defects.TruncateTo is { } length ? bytes[..Math.Clamp(length, 0, bytes.Length)] : bytes;
    }

    /// <summary>Inner certification data: PEM chain leaf first, then one NUL byte (as in every real quote).</summary>
    private static byte[] InnerCertificationData(SimulatedPki pki, QuoteDefects defects)
    {
        if (defects.CertificationData is { } raw)
        {
            return raw.ToArray();
        }

        var pem = Encoding.ASCII.GetBytes(defects.PckChainPem ?? pki.PckCertificateChainPem);
        return defects.OmitPemTerminator ? pem : [.. pem, 0];
    }

    private static byte[] SignWithUnrelatedKey(byte[] data)
    {
        using var unrelated = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return unrelated.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    private static void AddToU32(Span<byte> field, long delta) =>
        BinaryPrimitives.WriteUInt32LittleEndian(field, unchecked((uint)(BinaryPrimitives.ReadUInt32LittleEndian(field) + delta)));
}
