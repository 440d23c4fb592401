namespace PrivateMl.Tee.Tdx;

/// <summary>Something that turns 64 bytes of report data into a DCAP quote: configfs-tsm, or TDREPORT + QGS.</summary>
public interface ITdxQuoteSource
{
    /// <summary>"configfs-tsm", "tdx-guest+qgs", …</summary>
    string Name { get; }

    /// <summary>Returns a quote whose report_data is exactly <paramref name="reportData"/> (64 bytes).
    /// Device trouble is a <see cref="TdxDeviceException"/>.</summary>
    ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default);
}

/// <summary>Something that extends an RTMR: the sysfs measurement files, or the /dev/tdx_guest ioctl.</summary>
public interface IRtmrExtender
{
    /// <summary>"sysfs", "tdx-guest-ioctl", …</summary>
    string Name { get; }

    /// <summary>RTMR[index] = SHA-384(RTMR[index] ‖ digest). Device trouble is a <see cref="TdxDeviceException"/>.</summary>
    ValueTask ExtendAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default);
}
