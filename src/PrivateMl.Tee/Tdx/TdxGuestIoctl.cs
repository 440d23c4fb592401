using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PrivateMl.Tee.Tdx;

/// <summary>
/// The legacy <c>/dev/tdx_guest</c> character device: TDX_CMD_GET_REPORT0 (a TDREPORT over 64 bytes of report data)
/// and, where dstack's tdx-guest module provides it, TDX_CMD_EXTEND_RTMR. Linux only; the device path is a parameter.
/// Calls are serialized (the driver does not support concurrent use).
/// </summary>
public sealed class TdxGuestIoctl : IRtmrExtender
{
    private readonly Lock _lock = new();

    public TdxGuestIoctl(string devicePath = TdxGuestInterop.DevicePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(devicePath);
        DevicePath = devicePath;
    }

    public string DevicePath { get; }

    public string Name => "tdx-guest-ioctl";

    /// <summary>TDX_CMD_GET_REPORT0: the TDREPORT whose report_data is <paramref name="reportData"/> (64 bytes).</summary>
    public TdReport GetReport(ReadOnlySpan<byte> reportData)
    {
        var request = TdxGuestInterop.BuildReportRequest(reportData);
        Invoke(TdxGuestInterop.GetReport0, request, "TDX_CMD_GET_REPORT0", rtmrIndex: -1);
        return TdReport.FromBytes(request.AsSpan(TdxGuestInterop.ReportDataSize, TdxGuestInterop.TdReportSize));
    }

    public ValueTask ExtendAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var request = TdxGuestInterop.BuildExtendRequest(index, digest.Span);
        Invoke(TdxGuestInterop.ExtendRtmr, request, "TDX_CMD_EXTEND_RTMR", index);
        return ValueTask.CompletedTask;
    }

    private void Invoke(nuint command, byte[] request, string name, int rtmrIndex)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new TdxDeviceException(TdxDeviceError.NotPresent, $"{DevicePath} exists only on Linux TDX guests");
        }

        lock (_lock)
        {
            SafeFileHandle handle;
            try
            {
                handle = File.OpenHandle(DevicePath, FileMode.Open, FileAccess.ReadWrite);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw e is FileNotFoundException or DirectoryNotFoundException
                    ? new TdxDeviceException(TdxDeviceError.NotPresent, $"{DevicePath} is missing: this is not a TDX guest, or the tdx_guest driver is not loaded (modprobe tdx-guest)", e)
                    : TdxDeviceException.FromIo($"open {DevicePath}", e);
            }

            using (handle)
            {
                var added = false;
                try
                {
                    handle.DangerousAddRef(ref added);
                    var result = TdxGuestInterop.Ioctl((int)handle.DangerousGetHandle(), command, request);
                    if (result != 0)
                    {
                        throw ErrorFor(Marshal.GetLastPInvokeError(), name, rtmrIndex);
                    }
                }
                finally
                {
                    if (added)
                    {
                        handle.DangerousRelease();
                    }
                }
            }
        }
    }

    internal TdxDeviceException ErrorFor(int errno, string name, int rtmrIndex) => errno switch
    {
        Errno.ENOTTY or Errno.EOPNOTSUPP => new TdxDeviceException(
            TdxDeviceError.Unsupported,
            rtmrIndex >= 0
                ? $"{DevicePath} has no {name} ioctl (errno {errno}); RTMR extension needs dstack's tdx-guest module or a kernel with /sys/devices/virtual/misc/tdx_guest/measurements"
                : $"{DevicePath} does not support {name} (errno {errno})"),
        Errno.EINVAL when rtmrIndex >= 0 => new TdxDeviceException(TdxDeviceError.InvalidRtmrIndex, $"{name}: the TDX module refused RTMR{rtmrIndex} (only RTMR2 and RTMR3 are extensible by the guest)"),
        Errno.EBUSY or Errno.EAGAIN => new TdxDeviceException(TdxDeviceError.Busy, $"{name} on {DevicePath}: device busy (errno {errno})"),
        Errno.EACCES or Errno.EPERM => new TdxDeviceException(TdxDeviceError.PermissionDenied, $"{name} on {DevicePath}: permission denied (errno {errno})"),
        _ => new TdxDeviceException(TdxDeviceError.DeviceFailure, $"{name} on {DevicePath} failed with errno {errno}"),
    };
}
