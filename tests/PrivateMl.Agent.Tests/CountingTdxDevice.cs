using PrivateMl.Tee.Tdx;

namespace PrivateMl.Agent.Tests;

/// <summary>Passes calls to a real device and counts them (to prove a refused request reached no device).</summary>
internal sealed class CountingTdxDevice(ITdxDevice inner) : ITdxDevice
{
    private int _quotes;
    private int _extensions;

    public string ProviderName => inner.ProviderName;

    public bool IsSimulated => inner.IsSimulated;

    public int QuoteCount => Volatile.Read(ref _quotes);

    public int ExtendCount => Volatile.Read(ref _extensions);

    public ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _quotes);
        return inner.GetQuoteAsync(reportData, cancellationToken);
    }

    public ValueTask ExtendRtmrAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _extensions);
        return inner.ExtendRtmrAsync(index, digest, cancellationToken);
    }
}
