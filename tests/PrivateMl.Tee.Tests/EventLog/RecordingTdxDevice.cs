using System.Security.Cryptography;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.EventLog;

/// <summary>A test device that keeps four RTMRs the way the TDX module does and returns a fake "quote" of them.</summary>
internal sealed class RecordingTdxDevice : ITdxDevice
{
    private readonly Lock _lock = new();
    private readonly byte[][] _rtmrs = [new byte[48], new byte[48], new byte[48], new byte[48]];

    public string ProviderName => "recording";

    public bool IsSimulated => true;

    public int Extensions { get; private set; }

    public Exception? FailNextExtension { get; set; }

    public byte[] Rtmr(int index)
    {
        lock (_lock)
        {
            return (byte[])_rtmrs[index].Clone();
        }
    }

    public ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return ValueTask.FromResult<byte[]>([.. _rtmrs[3], .. reportData.Span]);
        }
    }

    public async ValueTask ExtendRtmrAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        lock (_lock)
        {
            if (FailNextExtension is { } failure)
            {
                FailNextExtension = null;
                throw failure;
            }

            Assert.Equal(48, digest.Length);
            _rtmrs[index] = SHA384.HashData([.. _rtmrs[index], .. digest.Span]);
            Extensions++;
        }
    }
}
