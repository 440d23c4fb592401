namespace PrivateMl.Tee.Tdx;

/// <summary>
/// RTMR extension through the kernel's TSM measurement files (newer kernels):
/// writing a 48-byte digest to <c>/sys/devices/virtual/misc/tdx_guest/measurements/rtmr&lt;N&gt;:sha384</c> extends RTMR N.
/// The directory is a parameter.
/// </summary>
public sealed class SysfsRtmrExtender : IRtmrExtender
{
    /// <summary>The measurement directory of the upstream tdx_guest driver.</summary>
    public const string DefaultMeasurementsDirectory = "/sys/devices/virtual/misc/tdx_guest/measurements";

    private readonly Lock _lock = new();

    public SysfsRtmrExtender(string measurementsDirectory = DefaultMeasurementsDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(measurementsDirectory);
        MeasurementsDirectory = measurementsDirectory;
    }

    public string MeasurementsDirectory { get; }

    public string Name => "sysfs";

    /// <summary>The file that extends RTMR <paramref name="index"/>.</summary>
    public string PathOf(int index) => Path.Combine(MeasurementsDirectory, $"rtmr{index}:sha384");

    public ValueTask ExtendAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, 3);
        if (digest.Length != 48)
        {
            throw new ArgumentException("an RTMR digest is 48 bytes (SHA-384)", nameof(digest));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var path = PathOf(index);
        lock (_lock)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
                stream.Write(digest.Span);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                throw new TdxDeviceException(TdxDeviceError.NotPresent, $"{path} is missing: this kernel does not offer RTMR{index} extension through sysfs", e);
            }
            catch (IOException e) when (e.HResult == Errno.EINVAL)
            {
                throw new TdxDeviceException(TdxDeviceError.InvalidRtmrIndex, $"write {path}: the kernel refused RTMR{index} (only RTMR2 and RTMR3 are extensible by the guest)", e);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw TdxDeviceException.FromIo($"write {path}", e);
            }
        }

        return ValueTask.CompletedTask;
    }
}
