using System.Runtime.InteropServices;

namespace PrivateMl.Tee.Tdx;

/// <summary>
/// The /dev/tdx_guest ioctl ABI: request numbers built with Linux's _IOC encoding and the request buffers laid out
/// byte for byte as the kernel structs (<c>struct tdx_report_req { __u8 reportdata[64]; __u8 tdreport[1024]; }</c>,
/// and dstack's <c>struct { __u8 data[48]; __u8 index; }</c> for RTMR extension).
/// </summary>
internal static partial class TdxGuestInterop
{
    public const string DevicePath = "/dev/tdx_guest";

    public const int ReportDataSize = 64;
    public const int TdReportSize = 1024;
    public const int ReportRequestSize = ReportDataSize + TdReportSize;
    public const int ExtendRtmrRequestSize = 48 + 1;

    private const uint IocWrite = 1;
    private const uint IocRead = 2;

    /// <summary>TDX_CMD_GET_REPORT0 = _IOWR('T', 1, struct tdx_report_req) (upstream Linux ≥ 6.2).</summary>
    public static readonly nuint GetReport0 = Ioc(IocRead | IocWrite, (byte)'T', 1, ReportRequestSize);

    /// <summary>TDX_CMD_EXTEND_RTMR = _IOR('T', 3, { u8 data[48]; u8 index; }) (dstack's tdx-guest module; the kernel side reads the buffer).</summary>
    public static readonly nuint ExtendRtmr = Ioc(IocRead, (byte)'T', 3, ExtendRtmrRequestSize);

    /// <summary>Linux _IOC(dir, type, nr, size): dir in bits 30–31, size in 16–29, type in 8–15, nr in 0–7.</summary>
    public static nuint Ioc(uint direction, byte type, byte number, int size) =>
        (nuint)((direction << 30) | ((uint)size << 16) | ((uint)type << 8) | number);

    /// <summary>Lays out a GET_REPORT0 request: report data followed by room for the TDREPORT.</summary>
    public static byte[] BuildReportRequest(ReadOnlySpan<byte> reportData)
    {
        if (reportData.Length != ReportDataSize)
        {
            throw new ArgumentException($"report data must be exactly {ReportDataSize} bytes", nameof(reportData));
        }

        var request = new byte[ReportRequestSize];
        reportData.CopyTo(request);
        return request;
    }

    /// <summary>Lays out an EXTEND_RTMR request: the 48-byte digest, then the RTMR index.</summary>
    public static byte[] BuildExtendRequest(int index, ReadOnlySpan<byte> digest)
    {
        if (digest.Length != 48)
        {
            throw new ArgumentException("an RTMR digest is 48 bytes (SHA-384)", nameof(digest));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, 3);
        var request = new byte[ExtendRtmrRequestSize];
        digest.CopyTo(request);
        request[48] = (byte)index;
        return request;
    }

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, [In, Out] byte[] argument);
}
