using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.Tdx;

public class TdxGuestIoctlTests
{
    [Fact]
    public void IoctlNumbers_MatchTheKernelEncoding()
    {
        // _IOWR('T', 1, 1088 bytes) and _IOR('T', 3, 49 bytes); research/dstack.md §4 gives 0x80315403 for the latter.
        Assert.Equal((nuint)0xC4405401u, TdxGuestInterop.GetReport0);
        Assert.Equal((nuint)0x80315403u, TdxGuestInterop.ExtendRtmr);
        Assert.Equal((nuint)0x40315403u, TdxGuestInterop.Ioc(1, (byte)'T', 3, 49));
    }

    [Fact]
    public void ReportRequest_IsReportDataThenRoomForTdReport()
    {
        var reportData = Enumerable.Range(0, 64).Select(i => (byte)(i + 1)).ToArray();
        var request = TdxGuestInterop.BuildReportRequest(reportData);

        Assert.Equal(64 + 1024, request.Length);
        Assert.Equal(reportData, request[..64]);
        Assert.All(request[64..], b => Assert.Equal(0, b));
        Assert.Throws<ArgumentException>(() => TdxGuestInterop.BuildReportRequest(new byte[63]));
    }

    [Fact]
    public void ExtendRequest_IsDigestThenIndex()
    {
        var digest = Enumerable.Repeat((byte)0xAB, 48).ToArray();
        var request = TdxGuestInterop.BuildExtendRequest(3, digest);

        Assert.Equal(49, request.Length);
        Assert.Equal(digest, request[..48]);
        Assert.Equal(3, request[48]);
        Assert.Throws<ArgumentException>(() => TdxGuestInterop.BuildExtendRequest(3, new byte[32]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TdxGuestInterop.BuildExtendRequest(4, digest));
    }

    [Fact]
    public void MissingDevice_IsNotPresent_AndNamesIt()
    {
        var path = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N"), "tdx_guest");
        var device = new TdxGuestIoctl(path);

        var e = Assert.Throws<TdxDeviceException>(() => device.GetReport(new byte[64]));
        Assert.Equal(TdxDeviceError.NotPresent, e.Error);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);

        var extend = Assert.Throws<TdxDeviceException>(() => device.ExtendAsync(3, new byte[48], TestContext.Current.CancellationToken).AsTask().GetAwaiter().GetResult());
        Assert.Equal(TdxDeviceError.NotPresent, extend.Error);
    }

    [Fact]
    public void DeviceThatIsNotTdx_FailsWithTypedError()
    {
        // /dev/null accepts open but no TDX ioctl: the kernel answers ENOTTY.
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists("/dev/null"), "needs Linux /dev/null");
        var e = Assert.Throws<TdxDeviceException>(() => new TdxGuestIoctl("/dev/null").GetReport(new byte[64]));
        Assert.Equal(TdxDeviceError.Unsupported, e.Error);
    }

    [Theory]
    [InlineData(25, 3, TdxDeviceError.Unsupported)]
    [InlineData(95, -1, TdxDeviceError.Unsupported)]
    [InlineData(22, 1, TdxDeviceError.InvalidRtmrIndex)]
    [InlineData(22, -1, TdxDeviceError.DeviceFailure)]
    [InlineData(16, 3, TdxDeviceError.Busy)]
    [InlineData(13, 3, TdxDeviceError.PermissionDenied)]
    [InlineData(5, 3, TdxDeviceError.DeviceFailure)]
    public void Errno_MapsToTypedError(int errno, int rtmrIndex, TdxDeviceError expected)
    {
        var e = new TdxGuestIoctl().ErrorFor(errno, "TDX_CMD_X", rtmrIndex);
        Assert.Equal(expected, e.Error);
    }

    [Fact]
    public void TdReport_ReadsFieldsAtTheirOffsets()
    {
        var raw = new byte[1024];
        raw.AsSpan(128, 64).Fill(0x11);
        raw.AsSpan(512, 8).Fill(0x22);
        raw.AsSpan(528, 48).Fill(0x33);
        raw.AsSpan(720 + (3 * 48), 48).Fill(0x44);
        var report = TdReport.FromBytes(raw);

        Assert.All(report.ReportData.ToArray(), b => Assert.Equal(0x11, b));
        Assert.All(report.TdAttributes.ToArray(), b => Assert.Equal(0x22, b));
        Assert.All(report.MrTd.ToArray(), b => Assert.Equal(0x33, b));
        Assert.All(report.Rtmr(3).ToArray(), b => Assert.Equal(0x44, b));
        Assert.All(report.Rtmr(2).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(raw, report.ToArray());
        Assert.Equal(TdxDeviceError.DeviceFailure, Assert.Throws<TdxDeviceException>(() => TdReport.FromBytes(new byte[1023])).Error);
    }
}
