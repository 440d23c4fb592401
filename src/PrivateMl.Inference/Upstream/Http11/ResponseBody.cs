using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace PrivateMl.Inference.Upstream.Http11;

/// <summary>
/// A response body as its bytes arrive (no buffering beyond the connection's receive buffer): Content-Length,
/// chunked or close-delimited. At the body's end a keep-alive connection goes back to the pool; disposed before the
/// end, or broken, the connection is closed (its remaining bytes belong to this response). A zero-byte read waits
/// until bytes are there without taking any, so a caller can wait for a token without holding a buffer.
/// </summary>
internal sealed class ResponseBody : Stream
{
    private readonly Action<Connection> _release;
    private readonly ResponseHead _head;
    private Connection? _connection;
    private ChunkedDecoder _chunked;
    private long _remaining;
    private bool _broken;
    private bool _disposed;

    public ResponseBody(Connection connection, ResponseHead head, Action<Connection> release)
    {
        _connection = connection;
        _head = head;
        _release = release;
        _remaining = head.ContentLength;
        if (head.Framing == BodyFraming.None)
        {
            Finish();
        }
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    private bool Ended => _connection is null;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Ended)
        {
            return _broken ? throw new IOException("the upstream response body broke off earlier") : ValueTask.FromResult(0);
        }

        return ReadCoreAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        // The relay reads asynchronously; a synchronous reader (a StreamReader, CopyTo) gets the same decoding with
        // blocking receives, and no buffer or task of its own per read.
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Ended)
        {
            return _broken ? throw new IOException("the upstream response body broke off earlier") : 0;
        }

        var connection = _connection!;
        try
        {
            if (buffer.IsEmpty)
            {
                if (!ConsumeFraming(connection) && connection.BufferedCount == 0)
                {
                    connection.Socket.Poll(-1, SelectMode.SelectRead);
                }

                return 0;
            }

            while (true)
            {
                var read = ReadBuffered(connection, buffer);
                if (read >= 0)
                {
                    return read;
                }

                if (_head.Framing != BodyFraming.Chunked)
                {
                    return Received(connection.Socket.Receive(buffer[..Room(buffer.Length)], SocketFlags.None));
                }

                if (connection.Receive(ResponseHead.MaxBytes) == 0)
                {
                    throw new IOException("the upstream closed the connection inside a chunked body");
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Break();
            throw new IOException("the upstream connection failed while the body was read", e);
        }
        catch
        {
            Break();
            throw;
        }
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadCoreAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        var connection = _connection!;
        try
        {
            if (destination.IsEmpty)
            {
                if (!ConsumeFraming(connection) && connection.BufferedCount == 0)
                {
                    await connection.Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken);
                }

                return 0;
            }

            while (true)
            {
                var read = ReadBuffered(connection, destination.Span);
                if (read >= 0)
                {
                    return read;
                }

                if (_head.Framing != BodyFraming.Chunked)
                {
                    return Received(await connection.Socket.ReceiveAsync(destination[..Room(destination.Length)], SocketFlags.None, cancellationToken));
                }

                if (await connection.ReceiveAsync(ResponseHead.MaxBytes, cancellationToken) == 0)
                {
                    throw new IOException("the upstream closed the connection inside a chunked body");
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Break();
            throw new IOException("the upstream connection failed while the body was read", e);
        }
        catch
        {
            Break();
            throw;
        }
    }

    /// <summary>
    /// For a zero-byte read: chunked framing alone (a chunk's CRLF, the last chunk) is consumed now, so a wait that
    /// follows is for data; true when that ended the body.
    /// </summary>
    private bool ConsumeFraming(Connection connection)
    {
        if (_head.Framing != BodyFraming.Chunked || connection.BufferedCount == 0)
        {
            return false;
        }

        connection.Consume(_chunked.Decode(connection.Buffered, [], out _));
        if (!_chunked.IsDone)
        {
            return false;
        }

        Finish();
        return true;
    }

    /// <summary>
    /// Reads body bytes from what the connection has buffered: how many (0 at the body's end), or -1 when none can be
    /// had without a receive (nothing buffered, or chunked framing only).
    /// </summary>
    private int ReadBuffered(Connection connection, Span<byte> destination)
    {
        if (connection.BufferedCount == 0)
        {
            return -1;
        }

        switch (_head.Framing)
        {
            case BodyFraming.ContentLength:
                return CountDown(connection.CopyBuffered(destination, _remaining));

            case BodyFraming.Chunked:
                connection.Consume(_chunked.Decode(connection.Buffered, destination, out var written));
                if (_chunked.IsDone)
                {
                    Finish();
                    return written;
                }

                return written > 0 ? written : -1;

            default:
                return connection.CopyBuffered(destination, long.MaxValue);
        }
    }

    /// <summary>How much of a caller's buffer a receive straight into it may fill: no byte past a Content-Length body.</summary>
    private int Room(int length) => _head.Framing == BodyFraming.ContentLength ? (int)Math.Min(length, _remaining) : length;

    /// <summary>Accounts for a receive straight into the caller's buffer (a Content-Length or close-delimited body).</summary>
    private int Received(int read)
    {
        if (_head.Framing == BodyFraming.ContentLength)
        {
            return read == 0 ? throw new IOException($"the upstream closed the connection {_remaining} bytes before the body's end") : CountDown(read);
        }

        // Close-delimited: the body is whatever comes until the upstream closes its side.
        if (read == 0)
        {
            Finish();
        }

        return read;
    }

    private int CountDown(int read)
    {
        _remaining -= read;
        if (_remaining == 0)
        {
            Finish();
        }

        return read;
    }

    /// <summary>The body's last byte was read: the connection is reused when both sides keep it and nothing follows.</summary>
    private void Finish()
    {
        var connection = _connection!;
        _connection = null;
        if (_head.KeepAlive && connection.BufferedCount == 0)
        {
            _release(connection);
        }
        else
        {
            connection.Dispose();
        }
    }

    private void Break()
    {
        _broken = true;
        var connection = _connection;
        _connection = null;
        connection?.Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _disposed = true;
            _connection?.Dispose();
            _connection = null;
        }

        base.Dispose(disposing);
    }
}
