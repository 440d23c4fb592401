using System.Net.Sockets;

namespace PrivateMl.Inference.Upstream.Http11;

/// <summary>
/// One keep-alive TCP connection to the upstream and the bytes received on it but not yet consumed. Used by one
/// request at a time: rented from the pool for a request and returned when its response body has been read to the end.
/// </summary>
internal sealed class Connection : IDisposable
{
    private const int InitialBufferBytes = 4 * 1024;

    private readonly Action _closed;
    private byte[] _buffer = new byte[InitialBufferBytes];
    private int _start;
    private int _end;
    private int _disposed;

    public Connection(Socket socket, Action closed)
    {
        Socket = socket;
        _closed = closed;
        CreatedAt = Environment.TickCount64;
    }

    public Socket Socket { get; }

    public long CreatedAt { get; }

    /// <summary>When the connection last went back to the pool (<see cref="Environment.TickCount64"/>).</summary>
    public long IdleSince { get; set; }

    /// <summary>True once the connection carried a response: a later request on it may meet a close the server made meanwhile.</summary>
    public bool Reused { get; set; }

    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    public int BufferedCount => _end - _start;

    public void Consume(int count)
    {
        _start += count;
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    /// <summary>
    /// Receives more bytes after those buffered (moved to the front first; the buffer grows up to
    /// <paramref name="maxBuffered"/> when they fill it); returns 0 when the upstream closed its side.
    /// </summary>
    public async ValueTask<int> ReceiveAsync(int maxBuffered, CancellationToken cancellationToken)
    {
        var read = await Socket.ReceiveAsync(Room(maxBuffered), SocketFlags.None, cancellationToken);
        _end += read;
        return read;
    }

    /// <summary>As <see cref="ReceiveAsync"/>, blocking: for a synchronous reader of the body.</summary>
    public int Receive(int maxBuffered)
    {
        var read = Socket.Receive(Room(maxBuffered).Span, SocketFlags.None);
        _end += read;
        return read;
    }

    /// <summary>The free space after the buffered bytes, made by moving them to the front and growing the buffer.</summary>
    private Memory<byte> Room(int maxBuffered)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            if (_buffer.Length >= maxBuffered)
            {
                throw new Http11ProtocolException($"the upstream sent more than {maxBuffered} bytes without a boundary");
            }

            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, maxBuffered));
        }

        return _buffer.AsMemory(_end);
    }

    /// <summary>Moves buffered bytes into <paramref name="destination"/>; returns how many.</summary>
    public int CopyBuffered(Span<byte> destination, long atMost)
    {
        var count = (int)Math.Min(Math.Min(_end - _start, destination.Length), atMost);
        _buffer.AsSpan(_start, count).CopyTo(destination);
        Consume(count);
        return count;
    }

    /// <summary>
    /// True when a pooled connection can carry another request: nothing readable on it, since an idle keep-alive
    /// connection that turned readable was closed by the server (or holds bytes no request asked for).
    /// </summary>
    public bool LooksReusable()
    {
        try
        {
            return BufferedCount == 0 && !Socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Socket.Dispose();
            _closed();
        }
    }
}
