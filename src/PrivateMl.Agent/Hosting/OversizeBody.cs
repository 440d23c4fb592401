using System.Buffers;

namespace PrivateMl.Agent.Hosting;

/// <summary>
/// What the agent, the gateway and the KMS do with a request body over their limit: read and drop up to
/// <see cref="DrainBytes"/> past the limit before answering 413, so the client (still sending) sees the answer
/// instead of a connection reset. Each host caps Kestrel at <see cref="KestrelCap"/>, so a body larger still ends
/// the drain with Kestrel's own error and the connection is dropped after the 413.
/// </summary>
public static class OversizeBody
{
    /// <summary>How much of an oversized body is read and dropped past the limit.</summary>
    public const int DrainBytes = 1024 * 1024;

    private const int ScratchBytes = 16 * 1024;

    /// <summary>Kestrel's <c>MaxRequestBodySize</c> for a host whose body limit is <paramref name="limit"/>.</summary>
    public static long KestrelCap(long limit) => limit + DrainBytes + 1L;

    /// <summary>True when a declared Content-Length is small enough that the body is still drained before the 413.</summary>
    public static bool IsDrainable(long contentLength, long limit) => contentLength <= limit + DrainBytes;

    /// <summary>As <see cref="DrainAsync(Stream, Memory{byte}, long, long, CancellationToken)"/>, with a pooled scratch buffer.</summary>
    public static async ValueTask<bool> DrainAsync(Stream body, long consumed, long limit, CancellationToken cancellationToken)
    {
        var scratch = ArrayPool<byte>.Shared.Rent(ScratchBytes);
        try
        {
            return await DrainAsync(body, scratch, consumed, limit, cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// Reads and drops the rest of <paramref name="body"/> into <paramref name="scratch"/>, of which
    /// <paramref name="consumed"/> bytes were already read, until it ends or more than <see cref="DrainBytes"/> past
    /// <paramref name="limit"/> were read in all. True when the body ended within that; false when it was cut short
    /// (here or by Kestrel's cap), and then the connection should not be reused.
    /// </summary>
    public static async ValueTask<bool> DrainAsync(Stream body, Memory<byte> scratch, long consumed, long limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfZero(scratch.Length);
        var total = consumed;
        try
        {
            int read;
            while ((read = await body.ReadAsync(scratch, cancellationToken)) > 0)
            {
                total += read;
                if (total > limit + DrainBytes)
                {
                    return false;
                }
            }

            return true;
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException)
        {
            // Past Kestrel's cap: the 413 still goes out, then the connection is dropped.
            return false;
        }
    }
}
