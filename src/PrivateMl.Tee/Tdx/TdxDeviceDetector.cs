namespace PrivateMl.Tee.Tdx;

/// <summary>The kernel interfaces <see cref="TdxDeviceDetector"/> looks at; every path can be replaced (tests, containers).</summary>
public sealed record TdxDevicePaths
{
    public string ConfigfsTsmReportRoot { get; init; } = ConfigfsTsmQuoteProvider.DefaultReportRoot;

    public string TdxGuestDevice { get; init; } = TdxGuestInterop.DevicePath;

    public string RtmrMeasurementsDirectory { get; init; } = SysfsRtmrExtender.DefaultMeasurementsDirectory;

    public string TdxAttestConfig { get; init; } = QgsQuoteProvider.DefaultConfigPath;

    public static TdxDevicePaths Default { get; } = new();
}

/// <summary>
/// Picks what this machine offers. Quotes: configfs-tsm when its report directory exists, else /dev/tdx_guest with
/// the host QGS over vsock (port from /etc/tdx-attest.conf). RTMR extension: the sysfs measurement file of RTMR3 when
/// present, else the /dev/tdx_guest ioctl when the device exists, else none (then extending fails with a message
/// naming both). When no quote path exists the <see cref="TdxDeviceException"/> (<see cref="TdxDeviceError.NotPresent"/>)
/// says exactly what is missing.
/// </summary>
public static class TdxDeviceDetector
{
    public static TdxGuestDevice Detect(TdxDevicePaths? paths = null)
    {
        paths ??= TdxDevicePaths.Default;
        var hasConfigfs = Directory.Exists(paths.ConfigfsTsmReportRoot);
        var hasGuestDevice = File.Exists(paths.TdxGuestDevice);

        ITdxQuoteSource quotes;
        if (hasConfigfs)
        {
            quotes = new ConfigfsTsmQuoteProvider(paths.ConfigfsTsmReportRoot);
        }
        else if (hasGuestDevice)
        {
            var port = QgsQuoteProvider.ReadPort(paths.TdxAttestConfig)
                ?? throw new TdxDeviceException(
                    TdxDeviceError.NotPresent,
                    $"no TDX quote path: {paths.ConfigfsTsmReportRoot} does not exist and {paths.TdxGuestDevice} is present, but {paths.TdxAttestConfig} names no QGS vsock port (a line \"port=4050\"); use a kernel with configfs-tsm (Linux 6.7+) or configure the QGS port");
            quotes = QgsQuoteProvider.ForTdxGuest(new TdxGuestIoctl(paths.TdxGuestDevice), port);
        }
        else
        {
            throw new TdxDeviceException(TdxDeviceError.NotPresent, MissingMessage(paths));
        }

        var sysfsFile = Path.Combine(paths.RtmrMeasurementsDirectory, "rtmr3:sha384");
        IRtmrExtender? extender = File.Exists(sysfsFile)
            ? new SysfsRtmrExtender(paths.RtmrMeasurementsDirectory)
            : hasGuestDevice ? new TdxGuestIoctl(paths.TdxGuestDevice) : null;
        var reason = extender is null
            ? $"neither {sysfsFile} nor {paths.TdxGuestDevice} exists"
            : null;
        return new TdxGuestDevice(quotes, extender, reason);
    }

    /// <summary>The sentence for a machine with no TDX interface at all.</summary>
    public static string MissingMessage(TdxDevicePaths paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return $"no TDX: {paths.ConfigfsTsmReportRoot} does not exist and {paths.TdxGuestDevice} is missing; this machine is not a TDX guest — use --simulate for the simulator";
    }
}
