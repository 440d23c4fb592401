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
        // Only the asynchronous path is used on the relay; a synchronous reader gets the same bytes through it.
        var rented = new byte[buffer.Length];
        var read = ReadAsync(rented).AsTask().GetAwaiter().GetResult();
        rented.AsSpan(0, read).CopyTo(buffer);
        return read;
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
                if (_head.Framing == BodyFraming.Chunked && connection.BufferedCount > 0)
                {
                    // Framing alone (a chunk's CRLF, the last chunk) is consumed now, so the wait below is for data.
                    connection.Consume(_chunked.Decode(connection.Buffered, [], out _));
                    if (_chunked.IsDone)
                    {
                        Finish();
                        return 0;
                    }
                }

                if (connection.BufferedCount == 0)
                {
                    await connection.Socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken);
                }

                return 0;
            }

            while (true)
            {
                switch (_head.Framing)
                {
                    case BodyFraming.ContentLength:
                        {
                            int read;
                            if (connection.BufferedCount > 0)
                            {
                                read = connection.CopyBuffered(destination.Span, _remaining);
                            }
                            else
                            {
                                var room = (int)Math.Min(destination.Length, _remaining);
                                read = await connection.Socket.ReceiveAsync(destination[..room], SocketFlags.None, cancellationToken);
                                if (read == 0)
                                {
                                    throw new IOException($"the upstream closed the connection {_remaining} bytes before the body's end");
                                }
                            }

                            _remaining -= read;
                            if (_remaining == 0)
                            {
                                Finish();
                            }

                            return read;
                        }

                    case BodyFraming.Chunked:
                        if (connection.BufferedCount > 0)
                        {
                            var consumed = _chunked.Decode(connection.Buffered, destination.Span, out var written);
                            connection.Consume(consumed);
                            if (_chunked.IsDone)
                            {
                                Finish();
                                return written;
                            }

                            if (written > 0)
                            {
                                return written;
                            }
                        }

                        if (await connection.ReceiveAsync(ResponseHead.MaxBytes, cancellationToken) == 0)
                        {
                            throw new IOException("the upstream closed the connection inside a chunked body");
                        }

                        break;

                    default:
                        {
                            // Close-delimited: the body is whatever comes until the upstream closes its side.
                            var read = connection.BufferedCount > 0
                                ? connection.CopyBuffered(destination.Span, long.MaxValue)
                                : await connection.Socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken);
                            if (read == 0)
                            {
                                Finish();
                            }

                            return read;
                        }
                }
            }
        }
        catch (Exception e)
        {
            Break();
            if (e is SocketException or ObjectDisposedException)
            {
                throw new IOException("the upstream connection failed while the body was read", e);
            }

            throw;
        }
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
