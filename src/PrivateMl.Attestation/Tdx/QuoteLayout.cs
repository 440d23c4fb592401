namespace PrivateMl.Attestation.Tdx;

/// <summary>
/// Offsets and sizes of Intel DCAP quotes (v3 SGX, v4 and v5 TDX), in bytes. Body offsets are relative to the start of
/// their structure. Source: Intel <c>sgx_quote_3.h</c>/<c>sgx_quote_4.h</c>/<c>sgx_quote_5.h</c>, research/tdx-dcap.md §1.
/// </summary>
public static class QuoteLayout
{
    // Header (48 bytes, all versions).
    public const int HeaderSize = 48;
    public const int VersionOffset = 0;
    public const int AttestationKeyTypeOffset = 2;
    public const int TeeTypeOffset = 4;
    public const int HeaderReservedOffset = 8;
    public const int HeaderReservedSize = 4;
    public const int QeSvnOffset = 8;
    public const int PceSvnOffset = 10;
    public const int QeVendorIdOffset = 12;
    public const int QeVendorIdSize = 16;
    public const int UserDataOffset = 28;
    public const int UserDataSize = 20;

    // v5 body descriptor (6 bytes after the header).
    public const int BodyDescriptorSize = 6;
    public const int BodyTypeOffset = 48;
    public const int BodySizeOffset = 50;

    // Report body sizes.
    public const int SgxReportBodySize = 384;
    public const int Td10ReportBodySize = 584;
    public const int Td15ReportBodySize = 648;

    // SGX report body (also the QE report).
    public const int SgxCpuSvnOffset = 0;
    public const int SgxMiscSelectOffset = 16;
    public const int SgxReserved1Offset = 20;
    public const int SgxReserved1Size = 12;
    public const int SgxIsvExtProdIdOffset = 32;
    public const int SgxAttributesOffset = 48;
    public const int SgxMrEnclaveOffset = 64;
    public const int SgxReserved2Offset = 96;
    public const int SgxMrSignerOffset = 128;
    public const int SgxReserved3Offset = 160;
    public const int SgxConfigIdOffset = 192;
    public const int SgxConfigIdSize = 64;
    public const int SgxIsvProdIdOffset = 256;
    public const int SgxIsvSvnOffset = 258;
    public const int SgxConfigSvnOffset = 260;
    public const int SgxReserved4Offset = 262;
    public const int SgxReserved4Size = 42;
    public const int SgxIsvFamilyIdOffset = 304;
    public const int SgxReportDataOffset = 320;

    // TD report body (TD 1.0; TD 1.5 appends two fields).
    public const int TdTeeTcbSvnOffset = 0;
    public const int TdMrSeamOffset = 16;
    public const int TdMrSignerSeamOffset = 64;
    public const int TdSeamAttributesOffset = 112;
    public const int TdAttributesOffset = 120;
    public const int TdXfamOffset = 128;
    public const int TdMrTdOffset = 136;
    public const int TdMrConfigIdOffset = 184;
    public const int TdMrOwnerOffset = 232;
    public const int TdMrOwnerConfigOffset = 280;
    public const int TdRtmr0Offset = 328;
    public const int TdReportDataOffset = 520;
    public const int TdTeeTcbSvn2Offset = 584;
    public const int TdMrServiceTdOffset = 600;

    // Field sizes.
    public const int Svn16Size = 16;
    public const int Sha384Size = 48;
    public const int Sha256Size = 32;
    public const int ReportDataSize = 64;
    public const int AttributesU64Size = 8;

    // Signature data.
    public const int SignatureDataLengthSize = 4;
    public const int EcdsaSignatureSize = 64;
    public const int EcdsaPublicKeySize = 64;
    public const int CertificationDataHeaderSize = 6; // type u16 + size u32
    public const int QeAuthDataSizeSize = 2;

    /// <summary>Smallest well-formed quote (Intel QVL <c>QUOTE_MIN_BYTE_LEN</c>).</summary>
    public const int MinimumQuoteSize = HeaderSize + SgxReportBodySize + SignatureDataLengthSize
        + EcdsaSignatureSize + EcdsaPublicKeySize + SgxReportBodySize + EcdsaSignatureSize + QeAuthDataSizeSize + CertificationDataHeaderSize;

    /// <summary>Intel's QE vendor ID.</summary>
    public static ReadOnlySpan<byte> IntelQeVendorId => [0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07];
}

/// <summary>Named maxima, checked before anything is allocated for a length read from untrusted input.</summary>
public static class QuoteLimits
{
    /// <summary>Largest quote accepted as a whole (real quotes are about 5 KiB).</summary>
    public const int MaxQuoteSize = 256 * 1024;

    /// <summary>Largest signature-data length (<c>sig_data_len</c>).</summary>
    public const int MaxSignatureDataSize = MaxQuoteSize;

    /// <summary>Largest QE authentication data (real quotes carry 32 bytes).</summary>
    public const int MaxQeAuthDataSize = 4096;

    /// <summary>Largest certification data payload (a PEM chain of three certificates is about 3.7 KiB).</summary>
    public const int MaxCertificationDataSize = 64 * 1024;

    /// <summary>Most certificates accepted in a PEM chain.</summary>
    public const int MaxChainCertificates = 4;

    /// <summary>Largest text input (hex or base64) accepted by <see cref="QuoteInput.Decode"/>.</summary>
    public const int MaxEncodedInputSize = 2 * MaxQuoteSize + 64;
}
