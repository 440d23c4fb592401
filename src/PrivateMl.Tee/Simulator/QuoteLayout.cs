using System.Buffers.Binary;

namespace PrivateMl.Tee.Simulator;

/// <summary>Offsets and sizes of a TDX quote v4 with a TD 1.0 body (research/tdx-dcap.md §1).</summary>
internal static class QuoteLayout
{
    public const int HeaderSize = 48;
    public const int TdReportBodySize = 584;
    public const int SgxReportBodySize = 384;
    public const int SignedRegionSize = HeaderSize + TdReportBodySize; // 632
    public const int SignatureDataLengthOffset = SignedRegionSize;      // 632
    public const int SignatureDataOffset = SignedRegionSize + 4;        // 636

    public const ushort Version4 = 4;
    public const ushort AttestationKeyTypeEcdsaP256 = 2;
    public const uint TeeTypeTdx = 0x81;
    public const ushort CertificationDataQeReport = 6;
    public const ushort CertificationDataPckChain = 5;

    // Header
    public const int VersionOffset = 0;
    public const int AttestationKeyTypeOffset = 2;
    public const int TeeTypeOffset = 4;
    public const int QeVendorIdOffset = 12;
    public const int UserDataOffset = 28;

    // TD report body, relative to its start (48)
    public const int TeeTcbSvn = 0;
    public const int MrSeam = 16;
    public const int MrSignerSeam = 64;
    public const int SeamAttributes = 112;
    public const int TdAttributes = 120;
    public const int Xfam = 128;
    public const int MrTd = 136;
    public const int MrConfigId = 184;
    public const int MrOwner = 232;
    public const int MrOwnerConfig = 280;
    public const int Rtmr0 = 328;
    public const int Rtmr1 = 376;
    public const int Rtmr2 = 424;
    public const int Rtmr3 = 472;
    public const int ReportData = 520;

    /// <summary>Intel's QE vendor id, 939a7233f79c4ca9940a0db3957f0607.</summary>
    public static ReadOnlySpan<byte> IntelQeVendorId =>
        [0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07];

    public static void WriteU16(List<byte> buffer, int value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, unchecked((ushort)value));
        buffer.AddRange(bytes);
    }

    public static void WriteU32(List<byte> buffer, long value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, unchecked((uint)value));
        buffer.AddRange(bytes);
    }
}
