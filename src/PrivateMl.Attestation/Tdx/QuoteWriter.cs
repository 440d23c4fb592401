using System.Buffers.Binary;
using L = PrivateMl.Attestation.Tdx.QuoteLayout;

namespace PrivateMl.Attestation.Tdx;

/// <summary>The inverse of <see cref="QuoteParser"/>: fields to wire bytes, lengths recomputed from the fields.</summary>
internal static class QuoteWriter
{
    public static byte[] Write(TdxQuote quote, bool includeSignatureData)
    {
        var h = quote.Header;
        var signedLength = quote.SignedLength;
        var sig = quote.Signature;
        var qeBlock = L.SgxReportBodySize + L.EcdsaSignatureSize + L.QeAuthDataSizeSize + sig.QeAuthData.Length
            + L.CertificationDataHeaderSize + sig.CertificationData.Data.Length;
        var sigDataLength = L.EcdsaSignatureSize + L.EcdsaPublicKeySize + (h.Version == 3 ? qeBlock : L.CertificationDataHeaderSize + qeBlock);
        var total = includeSignatureData
            ? signedLength + L.SignatureDataLengthSize + sigDataLength + quote.TrailingBytes.Length
            : signedLength;

        var buffer = new byte[total];
        var s = buffer.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(s, h.Version);
        BinaryPrimitives.WriteUInt16LittleEndian(s[L.AttestationKeyTypeOffset..], (ushort)h.AttestationKeyType);
        BinaryPrimitives.WriteUInt32LittleEndian(s[L.TeeTypeOffset..], (uint)h.TeeType);
        Copy(h.Reserved, s, L.HeaderReservedOffset, L.HeaderReservedSize);
        Copy(h.QeVendorId, s, L.QeVendorIdOffset, L.QeVendorIdSize);
        Copy(h.UserData, s, L.UserDataOffset, L.UserDataSize);

        var bodyOffset = quote.ReportBodyOffset;
        if (h.Version >= 5)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(s[L.BodyTypeOffset..], (ushort)quote.BodyKind);
            BinaryPrimitives.WriteUInt32LittleEndian(s[L.BodySizeOffset..], (uint)quote.ReportBodyLength);
        }

        if (quote.BodyKind == ReportBodyKind.Sgx)
        {
            WriteSgxBody(quote.SgxReport ?? throw new InvalidOperationException("an SGX quote needs SgxReport"), s.Slice(bodyOffset, L.SgxReportBodySize));
        }
        else
        {
            WriteTdBody(quote.TdReport ?? throw new InvalidOperationException("a TDX quote needs TdReport"), quote.BodyKind, s.Slice(bodyOffset, quote.ReportBodyLength));
        }

        if (!includeSignatureData)
        {
            return buffer;
        }

        var p = signedLength;
        BinaryPrimitives.WriteUInt32LittleEndian(s[p..], (uint)sigDataLength);
        p += L.SignatureDataLengthSize;
        Copy(sig.QuoteSignature, s, p, L.EcdsaSignatureSize);
        p += L.EcdsaSignatureSize;
        Copy(sig.AttestationPublicKey, s, p, L.EcdsaPublicKeySize);
        p += L.EcdsaPublicKeySize;
        if (h.Version != 3)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(s[p..], (ushort)CertificationDataType.QeReportCertificationData);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(p + 2)..], (uint)qeBlock);
            p += L.CertificationDataHeaderSize;
        }

        Copy(sig.QeReportBytes, s, p, L.SgxReportBodySize);
        p += L.SgxReportBodySize;
        Copy(sig.QeReportSignature, s, p, L.EcdsaSignatureSize);
        p += L.EcdsaSignatureSize;
        BinaryPrimitives.WriteUInt16LittleEndian(s[p..], (ushort)sig.QeAuthData.Length);
        p += L.QeAuthDataSizeSize;
        sig.QeAuthData.Span.CopyTo(s[p..]);
        p += sig.QeAuthData.Length;
        BinaryPrimitives.WriteUInt16LittleEndian(s[p..], (ushort)sig.CertificationData.Type);
        BinaryPrimitives.WriteUInt32LittleEndian(s[(p + 2)..], (uint)sig.CertificationData.Data.Length);
        p += L.CertificationDataHeaderSize;
        sig.CertificationData.Data.Span.CopyTo(s[p..]);
        p += sig.CertificationData.Data.Length;
        quote.TrailingBytes.Span.CopyTo(s[p..]);
        return buffer;
    }

    /// <summary>Writes an SGX report body (an SGX quote's body, or a QE report: see <see cref="SgxReportBody.ToBytes"/>).</summary>
    public static void WriteSgxBody(SgxReportBody b, Span<byte> s)
    {
        Copy(b.CpuSvn, s, L.SgxCpuSvnOffset, L.Svn16Size);
        BinaryPrimitives.WriteUInt32LittleEndian(s[L.SgxMiscSelectOffset..], b.MiscSelect);
        Copy(b.Reserved1, s, L.SgxReserved1Offset, L.SgxReserved1Size);
        Copy(b.IsvExtProdId, s, L.SgxIsvExtProdIdOffset, 16);
        Copy(b.Attributes, s, L.SgxAttributesOffset, 16);
        Copy(b.MrEnclave, s, L.SgxMrEnclaveOffset, L.Sha256Size);
        Copy(b.Reserved2, s, L.SgxReserved2Offset, 32);
        Copy(b.MrSigner, s, L.SgxMrSignerOffset, L.Sha256Size);
        Copy(b.Reserved3, s, L.SgxReserved3Offset, 32);
        Copy(b.ConfigId, s, L.SgxConfigIdOffset, L.SgxConfigIdSize);
        BinaryPrimitives.WriteUInt16LittleEndian(s[L.SgxIsvProdIdOffset..], b.IsvProdId);
        BinaryPrimitives.WriteUInt16LittleEndian(s[L.SgxIsvSvnOffset..], b.IsvSvn);
        BinaryPrimitives.WriteUInt16LittleEndian(s[L.SgxConfigSvnOffset..], b.ConfigSvn);
        Copy(b.Reserved4, s, L.SgxReserved4Offset, L.SgxReserved4Size);
        Copy(b.IsvFamilyId, s, L.SgxIsvFamilyIdOffset, 16);
        Copy(b.ReportData, s, L.SgxReportDataOffset, L.ReportDataSize);
    }

    private static void WriteTdBody(TdReportBody b, ReportBodyKind kind, Span<byte> s)
    {
        Copy(b.TeeTcbSvn, s, L.TdTeeTcbSvnOffset, L.Svn16Size);
        Copy(b.MrSeam, s, L.TdMrSeamOffset, L.Sha384Size);
        Copy(b.MrSignerSeam, s, L.TdMrSignerSeamOffset, L.Sha384Size);
        Copy(b.SeamAttributes, s, L.TdSeamAttributesOffset, L.AttributesU64Size);
        Copy(b.TdAttributes, s, L.TdAttributesOffset, L.AttributesU64Size);
        Copy(b.Xfam, s, L.TdXfamOffset, L.AttributesU64Size);
        Copy(b.MrTd, s, L.TdMrTdOffset, L.Sha384Size);
        Copy(b.MrConfigId, s, L.TdMrConfigIdOffset, L.Sha384Size);
        Copy(b.MrOwner, s, L.TdMrOwnerOffset, L.Sha384Size);
        Copy(b.MrOwnerConfig, s, L.TdMrOwnerConfigOffset, L.Sha384Size);
        Copy(b.Rtmr0, s, L.TdRtmr0Offset, L.Sha384Size);
        Copy(b.Rtmr1, s, L.TdRtmr0Offset + L.Sha384Size, L.Sha384Size);
        Copy(b.Rtmr2, s, L.TdRtmr0Offset + (2 * L.Sha384Size), L.Sha384Size);
        Copy(b.Rtmr3, s, L.TdRtmr0Offset + (3 * L.Sha384Size), L.Sha384Size);
        Copy(b.ReportData, s, L.TdReportDataOffset, L.ReportDataSize);
        if (kind == ReportBodyKind.Td15)
        {
            Copy(b.TeeTcbSvn2 ?? default, s, L.TdTeeTcbSvn2Offset, L.Svn16Size);
            Copy(b.MrServiceTd ?? default, s, L.TdMrServiceTdOffset, L.Sha384Size);
        }
    }

    private static void Copy(ReadOnlyMemory<byte> value, Span<byte> destination, int offset, int size)
    {
        if (value.Length > size)
        {
            throw new ArgumentException($"a field of {value.Length} bytes does not fit its {size}-byte slot at offset {offset}");
        }

        value.Span.CopyTo(destination.Slice(offset, size));
    }
}
