namespace PrivateMl.Tee.Tdx;

/// <summary>Why talking to the TDX device failed. Callers branch on this, never on the message.</summary>
public enum TdxDeviceError
{
    /// <summary>No TDX interface on this machine (neither configfs-tsm nor /dev/tdx_guest), or the one named is gone.</summary>
    NotPresent = 1,

    /// <summary>The kernel said the device is busy (EBUSY); retrying later may help.</summary>
    Busy = 2,

    /// <summary>The configfs-tsm report entry's generation changed under us: another writer raced this request.</summary>
    GenerationMismatch = 3,

    /// <summary>The configfs-tsm provider is not TDX (e.g. <c>sev_guest</c>).</summary>
    WrongProvider = 4,

    /// <summary>The device returned a quote that is malformed, out of bounds, or over other report data.</summary>
    InvalidQuote = 5,

    /// <summary>The caller may not use the device (EACCES/EPERM); usually the agent must run as root.</summary>
    PermissionDenied = 6,

    /// <summary>An RTMR index the device refuses to extend (only RTMR2 and RTMR3 are extensible by the guest).</summary>
    InvalidRtmrIndex = 7,

    /// <summary>The kernel interface is there but this operation is not offered by it.</summary>
    Unsupported = 8,

    /// <summary>The quote generation service (QGS) answered with an error or a malformed message.</summary>
    QuoteServiceFailure = 9,

    /// <summary>Any other I/O failure; the message says which file or call.</summary>
    DeviceFailure = 10,
}

/// <summary>The one exception type the TDX device classes let out for device trouble.</summary>
public sealed class TdxDeviceException : Exception
{
    public TdxDeviceException(TdxDeviceError error, string message)
        : base(message) => Error = error;

    public TdxDeviceException(TdxDeviceError error, string message, Exception inner)
        : base(message, inner) => Error = error;

    public TdxDeviceError Error { get; }

    internal static TdxDeviceException FromIo(string what, Exception e) => e switch
    {
        UnauthorizedAccessException => new TdxDeviceException(TdxDeviceError.PermissionDenied, $"{what}: permission denied (run as root)", e),
        DirectoryNotFoundException or FileNotFoundException => new TdxDeviceException(TdxDeviceError.NotPresent, $"{what}: {e.Message}", e),
        IOException io when io.HResult == Errno.EBUSY => new TdxDeviceException(TdxDeviceError.Busy, $"{what}: device busy", e),
        _ => new TdxDeviceException(TdxDeviceError.DeviceFailure, $"{what}: {e.Message}", e),
    };
}

/// <summary>Linux errno values the device classes recognise (IOException.HResult carries the raw errno on Unix).</summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ENOTTY = 25;
    public const int EOPNOTSUPP = 95;
}
