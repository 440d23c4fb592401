namespace PrivateMl.Tee.Tdx;

/// <summary>
/// The real TDX device of this guest: quotes from one <see cref="ITdxQuoteSource"/> (configfs-tsm, or TDREPORT + QGS)
/// and RTMR extension through one <see cref="IRtmrExtender"/> (sysfs measurement files or the /dev/tdx_guest ioctl),
/// when the kernel offers one. Built by <see cref="TdxDeviceDetector"/>.
/// </summary>
public sealed class TdxGuestDevice : ITdxDevice
{
    private readonly ITdxQuoteSource _quotes;
    private readonly IRtmrExtender? _extender;

    public TdxGuestDevice(ITdxQuoteSource quotes, IRtmrExtender? extender, string? noExtenderReason = null)
    {
        ArgumentNullException.ThrowIfNull(quotes);
        _quotes = quotes;
        _extender = extender;
        NoExtenderReason = noExtenderReason ?? "this kernel offers no RTMR extension";
    }

    /// <summary>"configfs-tsm" or "tdx-guest" (the quote path).</summary>
    public string ProviderName => _quotes is ConfigfsTsmQuoteProvider ? "configfs-tsm" : "tdx-guest";

    public bool IsSimulated => false;

    public ITdxQuoteSource QuoteSource => _quotes;

    /// <summary>The RTMR extension path, or null when the kernel offers none (then <see cref="ExtendRtmrAsync"/> fails).</summary>
    public IRtmrExtender? RtmrExtender => _extender;

    /// <summary>Why there is no extender, when there is none.</summary>
    public string NoExtenderReason { get; }

    public ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default) =>
        _quotes.GetQuoteAsync(reportData, cancellationToken);

    public ValueTask ExtendRtmrAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default) =>
        _extender is null
            ? throw new TdxDeviceException(TdxDeviceError.Unsupported, $"cannot extend RTMR{index}: {NoExtenderReason}")
            : _extender.ExtendAsync(index, digest, cancellationToken);

    public override string ToString() =>
        $"TDX guest (quotes: {_quotes.Name}; RTMR extension: {_extender?.Name ?? "none"})";
}
