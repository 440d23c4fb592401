using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.Tdx;

public sealed class TdxDeviceDetectorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pml-detect-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private TdxDevicePaths Paths => new()
    {
        ConfigfsTsmReportRoot = Path.Combine(_dir, "sys/kernel/config/tsm/report"),
        TdxGuestDevice = Path.Combine(_dir, "dev/tdx_guest"),
        RtmrMeasurementsDirectory = Path.Combine(_dir, "sys/devices/virtual/misc/tdx_guest/measurements"),
        TdxAttestConfig = Path.Combine(_dir, "etc/tdx-attest.conf"),
    };

    [Fact]
    public void NothingThere_SaysExactlyWhatIsMissing()
    {
        var e = Assert.Throws<TdxDeviceException>(() => TdxDeviceDetector.Detect(Paths));

        Assert.Equal(TdxDeviceError.NotPresent, e.Error);
        Assert.Equal(
            $"no TDX: {Paths.ConfigfsTsmReportRoot} does not exist and {Paths.TdxGuestDevice} is missing; this machine is not a TDX guest — use --simulate for the simulator",
            e.Message);
    }

    [Fact]
    public void DefaultMessage_NamesTheRealPaths()
    {
        Assert.Equal(
            "no TDX: /sys/kernel/config/tsm/report does not exist and /dev/tdx_guest is missing; this machine is not a TDX guest — use --simulate for the simulator",
            TdxDeviceDetector.MissingMessage(TdxDevicePaths.Default));
    }

    [Fact]
    public void PrefersConfigfsTsm_AndSysfsRtmr()
    {
        Directory.CreateDirectory(Paths.ConfigfsTsmReportRoot);
        Create(Paths.TdxGuestDevice);
        Create(Path.Combine(Paths.RtmrMeasurementsDirectory, "rtmr3:sha384"));

        var device = TdxDeviceDetector.Detect(Paths);

        Assert.Equal("configfs-tsm", device.ProviderName);
        Assert.False(device.IsSimulated);
        Assert.Equal(Paths.ConfigfsTsmReportRoot, Assert.IsType<ConfigfsTsmQuoteProvider>(device.QuoteSource).ReportRoot);
        Assert.IsType<SysfsRtmrExtender>(device.RtmrExtender);
    }

    [Fact]
    public void ConfigfsWithGuestDevice_ExtendsThroughIoctl()
    {
        Directory.CreateDirectory(Paths.ConfigfsTsmReportRoot);
        Create(Paths.TdxGuestDevice);

        var device = TdxDeviceDetector.Detect(Paths);

        Assert.Equal(Paths.TdxGuestDevice, Assert.IsType<TdxGuestIoctl>(device.RtmrExtender).DevicePath);
    }

    [Fact]
    public async Task ConfigfsAlone_HasNoExtender_AndSaysWhy()
    {
        Directory.CreateDirectory(Paths.ConfigfsTsmReportRoot);

        var device = TdxDeviceDetector.Detect(Paths);
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => device.ExtendRtmrAsync(3, new byte[48], TestContext.Current.CancellationToken).AsTask());

        Assert.Null(device.RtmrExtender);
        Assert.Equal(TdxDeviceError.Unsupported, e.Error);
        Assert.Contains(Paths.TdxGuestDevice, e.Message, StringComparison.Ordinal);
        Assert.Contains("rtmr3:sha384", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LegacyDevice_WithQgsPort_UsesQgs()
    {
        Create(Paths.TdxGuestDevice);
        Create(Paths.TdxAttestConfig, "port=4050\n");

        var device = TdxDeviceDetector.Detect(Paths);

        Assert.Equal("tdx-guest", device.ProviderName);
        Assert.Equal(4050u, Assert.IsType<QgsQuoteProvider>(device.QuoteSource).Port);
        Assert.IsType<TdxGuestIoctl>(device.RtmrExtender);
    }

    [Fact]
    public void LegacyDevice_WithoutQgsPort_SaysSo()
    {
        Create(Paths.TdxGuestDevice);

        var e = Assert.Throws<TdxDeviceException>(() => TdxDeviceDetector.Detect(Paths));

        Assert.Equal(TdxDeviceError.NotPresent, e.Error);
        Assert.Contains(Paths.TdxAttestConfig, e.Message, StringComparison.Ordinal);
        Assert.Contains("port=4050", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RealHardware_WhenAsked()
    {
        // Runs only inside a TDX guest: PRIVATEML_TDX_HARDWARE=1.
        Assert.SkipUnless(Environment.GetEnvironmentVariable("PRIVATEML_TDX_HARDWARE") == "1", "set PRIVATEML_TDX_HARDWARE=1 on a TDX guest to run");
        var device = TdxDeviceDetector.Detect();
        var reportData = System.Security.Cryptography.RandomNumberGenerator.GetBytes(64);

        var quote = await device.GetQuoteAsync(reportData, TestContext.Current.CancellationToken);

        Assert.Equal(reportData, quote.AsSpan(TdxQuoteShape.ReportDataOffset(quote), 64).ToArray());
    }

    private static void Create(string path, string content = "")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }
}
