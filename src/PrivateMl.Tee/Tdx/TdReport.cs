namespace PrivateMl.Tee.Tdx;

/// <summary>
/// The 1024-byte TDREPORT_STRUCT that TDG.MR.REPORT returns (via TDX_CMD_GET_REPORT0): REPORTMACSTRUCT (256 bytes,
/// report_data at 128), TEE_TCB_INFO (239), 17 reserved, TDINFO (512: attributes, xfam, MRTD, MRCONFIGID, MROWNER,
/// MROWNERCONFIG, RTMR0–3, SERVTD_HASH). It is MACed for this platform only; a quote is what leaves the machine.
/// </summary>
public sealed class TdReport
{
    public const int Size = 1024;

    private const int ReportDataOffset = 128;
    private const int TdInfoOffset = 512;
    private const int AttributesOffset = TdInfoOffset;
    private const int XfamOffset = TdInfoOffset + 8;
    private const int MrtdOffset = TdInfoOffset + 16;
    private const int RtmrOffset = TdInfoOffset + 16 + (4 * 48);

    private readonly byte[] _bytes;

    private TdReport(byte[] bytes) => _bytes = bytes;

    /// <summary>The raw 1024 bytes (a copy), as a QGS request carries them.</summary>
    public byte[] ToArray() => (byte[])_bytes.Clone();

    public ReadOnlySpan<byte> ReportData => _bytes.AsSpan(ReportDataOffset, 64);

    public ReadOnlySpan<byte> TdAttributes => _bytes.AsSpan(AttributesOffset, 8);

    public ReadOnlySpan<byte> Xfam => _bytes.AsSpan(XfamOffset, 8);

    public ReadOnlySpan<byte> MrTd => _bytes.AsSpan(MrtdOffset, 48);

    /// <summary>RTMR <paramref name="index"/> (0..3) as the TD sees it now.</summary>
    public ReadOnlySpan<byte> Rtmr(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, 3);
        return _bytes.AsSpan(RtmrOffset + (index * 48), 48);
    }

    /// <summary>Wraps a TDREPORT; anything but 1024 bytes is a <see cref="TdxDeviceException"/> (<see cref="TdxDeviceError.DeviceFailure"/>).</summary>
    public static TdReport FromBytes(ReadOnlySpan<byte> bytes) =>
        bytes.Length == Size
            ? new TdReport(bytes.ToArray())
            : throw new TdxDeviceException(TdxDeviceError.DeviceFailure, $"a TDREPORT is {Size} bytes, got {bytes.Length}");
}
