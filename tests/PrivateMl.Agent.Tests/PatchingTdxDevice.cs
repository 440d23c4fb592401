using System.Security.Cryptography;
using PrivateMl.Tee.Tdx;
using PrivateMl.Testing;

namespace PrivateMl.Agent.Tests;

/// <summary>
/// Interim test device (until the simulator is merged): a real v4 quote from ../shared with report_data and RTMRs
/// patched in, as dstack's own simulator does. Signatures do not verify; structure parses.
/// </summary>
internal sealed class PatchingTdxDevice : ITdxDevice
{
    private readonly byte[] _template = SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote");
    private readonly byte[][] _rtmrs = [new byte[48], new byte[48], new byte[48], new byte[48]];
    private readonly Lock _gate = new();

    public string ProviderName => "test-patching";

    public bool IsSimulated => true;

    public int QuoteCount { get; private set; }

    public ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        if (reportData.Length != 64)
        {
            throw new ArgumentException("report data must be 64 bytes");
        }

        var quote = (byte[])_template.Clone();
        lock (_gate)
        {
            for (var i = 0; i < 4; i++)
            {
                _rtmrs[i].CopyTo(quote, 48 + 328 + (i * 48));
            }

            QuoteCount++;
        }

        reportData.Span.CopyTo(quote.AsSpan(568));
        return ValueTask.FromResult(quote);
    }

    public ValueTask ExtendRtmrAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            _rtmrs[index] = SHA384.HashData([.. _rtmrs[index], .. digest.Span]);
        }

        return ValueTask.CompletedTask;
    }
}
