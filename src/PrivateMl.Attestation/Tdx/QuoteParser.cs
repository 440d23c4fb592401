using System.Buffers.Binary;
using PrivateMl.Attestation.Verification;
using L = PrivateMl.Attestation.Tdx.QuoteLayout;

namespace PrivateMl.Attestation.Tdx;

/// <summary>Bounds-checked decoding of DCAP quotes ("Abi"). Every declared length is checked before it is used.</summary>
internal static class QuoteParser
{
    public static int BodySize(ReportBodyKind kind) => kind switch
    {
        ReportBodyKind.Sgx => L.SgxReportBodySize,
        ReportBodyKind.Td10 => L.Td10ReportBodySize,
        ReportBodyKind.Td15 => L.Td15ReportBodySize,
        _ => 0,
    };

    public static TdxQuote Parse(ReadOnlySpan<byte> input)
    {
        if (input.Length > QuoteLimits.MaxQuoteSize)
        {
            throw new AttestationException(ErrorCode.QuoteTooLarge, $"the quote is {input.Length} bytes; at most {QuoteLimits.MaxQuoteSize} are accepted");
        }

        if (input.Length < L.HeaderSize)
        {
            throw Truncated($"the quote is {input.Length} bytes, shorter than its 48-byte header");
        }

        var bytes = input.ToArray();
        ReadOnlyMemory<byte> m = bytes;
        var span = bytes.AsSpan();

        var version = BinaryPrimitives.ReadUInt16LittleEndian(span);
        if (version is < 3 or > 5)
        {
            throw new AttestationException(ErrorCode.UnsupportedQuoteVersion, $"quote version {version} is not supported (3, 4 or 5)");
        }

        var keyType = BinaryPrimitives.ReadUInt16LittleEndian(span[L.AttestationKeyTypeOffset..]);
        if (keyType != (ushort)AttestationKeyType.EcdsaP256)
        {
            throw new AttestationException(ErrorCode.UnsupportedAttestationKeyType, $"attestation key type {keyType} is not supported (2 = ECDSA P-256)");
        }

        var teeRaw = BinaryPrimitives.ReadUInt32LittleEndian(span[L.TeeTypeOffset..]);
        if (teeRaw is not ((uint)TeeType.Sgx or (uint)TeeType.Tdx))
        {
            throw new AttestationException(ErrorCode.UnsupportedTeeType, $"TEE type 0x{teeRaw:x8} is not supported (0 SGX, 0x81 TDX)");
        }

        var tee = (TeeType)teeRaw;
        if (version == 3 && tee != TeeType.Sgx)
        {
            throw new AttestationException(ErrorCode.UnsupportedTeeType, "a version 3 quote must be an SGX quote");
        }

        var header = new QuoteHeader
        {
            Version = version,
            AttestationKeyType = (AttestationKeyType)keyType,
            TeeType = tee,
            Reserved = m.Slice(L.HeaderReservedOffset, L.HeaderReservedSize),
            QeVendorId = m.Slice(L.QeVendorIdOffset, L.QeVendorIdSize),
            UserData = m.Slice(L.UserDataOffset, L.UserDataSize),
        };

        ReportBodyKind kind;
        uint? descriptorSize = null;
        var bodyOffset = L.HeaderSize;
        if (version == 5)
        {
            Need(span, L.HeaderSize + L.BodyDescriptorSize, "the v5 body descriptor");
            var type = BinaryPrimitives.ReadUInt16LittleEndian(span[L.BodyTypeOffset..]);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(span[L.BodySizeOffset..]);
            kind = type switch
            {
                1 => ReportBodyKind.Sgx,
                2 => ReportBodyKind.Td10,
                3 => ReportBodyKind.Td15,
                _ => throw new AttestationException(ErrorCode.UnsupportedBodyType, $"v5 body type {type} is not supported (1 SGX, 2 TD 1.0, 3 TD 1.5)"),
            };
            if (size != BodySize(kind))
            {
                throw new AttestationException(ErrorCode.UnsupportedBodyType, $"v5 body type {type} declares {size} bytes; it must be {BodySize(kind)}");
            }

            if ((kind == ReportBodyKind.Sgx) != (tee == TeeType.Sgx))
            {
                throw new AttestationException(ErrorCode.UnsupportedBodyType, $"v5 body type {type} does not belong to TEE type {tee}");
            }

            descriptorSize = size;
            bodyOffset += L.BodyDescriptorSize;
        }
        else
        {
            kind = tee == TeeType.Tdx ? ReportBodyKind.Td10 : ReportBodyKind.Sgx;
        }

        var bodySize = BodySize(kind);
        var signedLength = bodyOffset + bodySize;
        Need(span, signedLength + L.SignatureDataLengthSize, "the report body and the signature data length");

        SgxReportBody? sgx = null;
        TdReportBody? td = null;
        if (kind == ReportBodyKind.Sgx)
        {
            sgx = ParseSgxBody(m.Slice(bodyOffset, bodySize));
        }
        else
        {
            td = ParseTdBody(m.Slice(bodyOffset, bodySize), kind);
        }

        var sigLen = BinaryPrimitives.ReadUInt32LittleEndian(span[signedLength..]);
        var sigStart = signedLength + L.SignatureDataLengthSize;
        var remaining = span.Length - sigStart;
        if (sigLen > QuoteLimits.MaxSignatureDataSize)
        {
            throw new AttestationException(ErrorCode.FieldTooLarge, $"signature data length {sigLen} exceeds the limit {QuoteLimits.MaxSignatureDataSize}");
        }

        if (sigLen > remaining)
        {
            throw Truncated($"signature data declares {sigLen} bytes but {remaining} remain");
        }

        var sigData = m.Slice(sigStart, (int)sigLen);
        var signature = version == 3 ? ParseSignatureDataV3(sigData) : ParseSignatureDataV4(sigData);

        return new TdxQuote
        {
            Header = header,
            BodyKind = kind,
            BodyDescriptorSize = descriptorSize,
            SgxReport = sgx,
            TdReport = td,
            Signature = signature,
            TrailingBytes = m[(sigStart + (int)sigLen)..],
            Bytes = m,
        };
    }

    internal static SgxReportBody ParseSgxBody(ReadOnlyMemory<byte> b)
    {
        var s = b.Span;
        return new SgxReportBody
        {
            CpuSvn = b.Slice(L.SgxCpuSvnOffset, L.Svn16Size),
            MiscSelect = BinaryPrimitives.ReadUInt32LittleEndian(s[L.SgxMiscSelectOffset..]),
            Reserved1 = b.Slice(L.SgxReserved1Offset, L.SgxReserved1Size),
            IsvExtProdId = b.Slice(L.SgxIsvExtProdIdOffset, 16),
            Attributes = b.Slice(L.SgxAttributesOffset, 16),
            MrEnclave = b.Slice(L.SgxMrEnclaveOffset, L.Sha256Size),
            Reserved2 = b.Slice(L.SgxReserved2Offset, 32),
            MrSigner = b.Slice(L.SgxMrSignerOffset, L.Sha256Size),
            Reserved3 = b.Slice(L.SgxReserved3Offset, 32),
            ConfigId = b.Slice(L.SgxConfigIdOffset, L.SgxConfigIdSize),
            IsvProdId = BinaryPrimitives.ReadUInt16LittleEndian(s[L.SgxIsvProdIdOffset..]),
            IsvSvn = BinaryPrimitives.ReadUInt16LittleEndian(s[L.SgxIsvSvnOffset..]),
            ConfigSvn = BinaryPrimitives.ReadUInt16LittleEndian(s[L.SgxConfigSvnOffset..]),
            Reserved4 = b.Slice(L.SgxReserved4Offset, L.SgxReserved4Size),
            IsvFamilyId = b.Slice(L.SgxIsvFamilyIdOffset, 16),
            ReportData = b.Slice(L.SgxReportDataOffset, L.ReportDataSize),
        };
    }

    private static TdReportBody ParseTdBody(ReadOnlyMemory<byte> b, ReportBodyKind kind)
    {
        ReadOnlyMemory<byte> Mr(int offset) => b.Slice(offset, L.Sha384Size);
        return new TdReportBody
        {
            TeeTcbSvn = b.Slice(L.TdTeeTcbSvnOffset, L.Svn16Size),
            MrSeam = Mr(L.TdMrSeamOffset),
            MrSignerSeam = Mr(L.TdMrSignerSeamOffset),
            SeamAttributes = b.Slice(L.TdSeamAttributesOffset, L.AttributesU64Size),
            TdAttributes = b.Slice(L.TdAttributesOffset, L.AttributesU64Size),
            Xfam = b.Slice(L.TdXfamOffset, L.AttributesU64Size),
            MrTd = Mr(L.TdMrTdOffset),
            MrConfigId = Mr(L.TdMrConfigIdOffset),
            MrOwner = Mr(L.TdMrOwnerOffset),
            MrOwnerConfig = Mr(L.TdMrOwnerConfigOffset),
            Rtmr0 = Mr(L.TdRtmr0Offset),
            Rtmr1 = Mr(L.TdRtmr0Offset + L.Sha384Size),
            Rtmr2 = Mr(L.TdRtmr0Offset + (2 * L.Sha384Size)),
            Rtmr3 = Mr(L.TdRtmr0Offset + (3 * L.Sha384Size)),
            ReportData = b.Slice(L.TdReportDataOffset, L.ReportDataSize),
            TeeTcbSvn2 = kind == ReportBodyKind.Td15 ? b.Slice(L.TdTeeTcbSvn2Offset, L.Svn16Size) : (ReadOnlyMemory<byte>?)null,
            MrServiceTd = kind == ReportBodyKind.Td15 ? Mr(L.TdMrServiceTdOffset) : (ReadOnlyMemory<byte>?)null,
        };
    }

    /// <summary>v3: signature, key, QE report, QE signature, auth data, certification data (must fill the rest exactly).</summary>
    private static QuoteSignatureData ParseSignatureDataV3(ReadOnlyMemory<byte> d)
    {
        var fixedPart = L.EcdsaSignatureSize + L.EcdsaPublicKeySize;
        Need(d.Span, fixedPart, "the quote signature and attestation key");
        var (qe, cert) = ParseQeReportCertificationData(d[fixedPart..], "signature data");
        return new QuoteSignatureData
        {
            QuoteSignature = d[..L.EcdsaSignatureSize],
            AttestationPublicKey = d.Slice(L.EcdsaSignatureSize, L.EcdsaPublicKeySize),
            QeReportBytes = qe.ReportBytes,
            QeReport = ParseSgxBody(qe.ReportBytes),
            QeReportSignature = qe.Signature,
            QeAuthData = qe.AuthData,
            CertificationData = cert,
        };
    }

    /// <summary>v4/v5: signature, key, then outer certification data of type 6 holding the QE report block.</summary>
    private static QuoteSignatureData ParseSignatureDataV4(ReadOnlyMemory<byte> d)
    {
        var fixedPart = L.EcdsaSignatureSize + L.EcdsaPublicKeySize;
        Need(d.Span, fixedPart + L.CertificationDataHeaderSize, "the quote signature, attestation key and certification data header");
        var s = d.Span;
        var outerType = BinaryPrimitives.ReadUInt16LittleEndian(s[fixedPart..]);
        var outerSize = BinaryPrimitives.ReadUInt32LittleEndian(s[(fixedPart + 2)..]);
        if (outerType != (ushort)CertificationDataType.QeReportCertificationData)
        {
            throw new AttestationException(ErrorCode.UnsupportedCertificationDataType, $"outer certification data type {outerType} is not supported (6 = QE report certification data)");
        }

        var start = fixedPart + L.CertificationDataHeaderSize;
        if (outerSize > QuoteLimits.MaxSignatureDataSize)
        {
            throw new AttestationException(ErrorCode.FieldTooLarge, $"certification data size {outerSize} exceeds the limit");
        }

        if (outerSize != (uint)(d.Length - start))
        {
            throw new AttestationException(ErrorCode.MalformedCertificationData, $"outer certification data declares {outerSize} bytes but the signature data leaves {d.Length - start}");
        }

        var (qe, cert) = ParseQeReportCertificationData(d.Slice(start, (int)outerSize), "QE report certification data");
        return new QuoteSignatureData
        {
            QuoteSignature = d[..L.EcdsaSignatureSize],
            AttestationPublicKey = d.Slice(L.EcdsaSignatureSize, L.EcdsaPublicKeySize),
            OuterCertificationDataType = (CertificationDataType)outerType,
            OuterCertificationDataSize = (int)outerSize,
            QeReportBytes = qe.ReportBytes,
            QeReport = ParseSgxBody(qe.ReportBytes),
            QeReportSignature = qe.Signature,
            QeAuthData = qe.AuthData,
            CertificationData = cert,
        };
    }

    private static ((ReadOnlyMemory<byte> ReportBytes, ReadOnlyMemory<byte> Signature, ReadOnlyMemory<byte> AuthData) Qe, CertificationData Cert)
        ParseQeReportCertificationData(ReadOnlyMemory<byte> d, string what)
    {
        var s = d.Span;
        var pos = L.SgxReportBodySize + L.EcdsaSignatureSize;
        if (s.Length < pos + L.QeAuthDataSizeSize)
        {
            throw Malformed($"{what} is {s.Length} bytes, too short for a QE report, its signature and the auth data size");
        }

        var authSize = BinaryPrimitives.ReadUInt16LittleEndian(s[pos..]);
        pos += L.QeAuthDataSizeSize;
        if (authSize > QuoteLimits.MaxQeAuthDataSize)
        {
            throw new AttestationException(ErrorCode.FieldTooLarge, $"QE authentication data declares {authSize} bytes; the limit is {QuoteLimits.MaxQeAuthDataSize}");
        }

        if (authSize > s.Length - pos)
        {
            throw Malformed($"QE authentication data declares {authSize} bytes but {s.Length - pos} remain");
        }

        var auth = d.Slice(pos, authSize);
        pos += authSize;
        if (s.Length - pos < L.CertificationDataHeaderSize)
        {
            throw Malformed("the certification data header is missing");
        }

        var type = BinaryPrimitives.ReadUInt16LittleEndian(s[pos..]);
        var size = BinaryPrimitives.ReadUInt32LittleEndian(s[(pos + 2)..]);
        pos += L.CertificationDataHeaderSize;
        if (type is < 1 or > 7)
        {
            throw new AttestationException(ErrorCode.UnsupportedCertificationDataType, $"certification data type {type} is not defined (1..7)");
        }

        if (size > QuoteLimits.MaxCertificationDataSize)
        {
            throw new AttestationException(ErrorCode.FieldTooLarge, $"certification data declares {size} bytes; the limit is {QuoteLimits.MaxCertificationDataSize}");
        }

        if (size != (uint)(s.Length - pos))
        {
            throw Malformed($"certification data declares {size} bytes but {s.Length - pos} remain in the {what}");
        }

        var cert = new CertificationData { Type = (CertificationDataType)type, Data = d.Slice(pos, (int)size) };
        return ((d[..L.SgxReportBodySize], d.Slice(L.SgxReportBodySize, L.EcdsaSignatureSize), auth), cert);
    }

    private static void Need(ReadOnlySpan<byte> span, int length, string what)
    {
        if (span.Length < length)
        {
            throw Truncated($"the quote ends before {what} ({span.Length} of {length} bytes)");
        }
    }

    private static AttestationException Truncated(string message) => new(ErrorCode.QuoteTruncated, message);

    private static AttestationException Malformed(string message) => new(ErrorCode.MalformedCertificationData, message);
}
