using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using PrivateMl.Inference.Upstream.Http11;

namespace PrivateMl.Inference.Upstream;

/// <summary>
/// A plain-HTTP upstream (vLLM on the same host or network) reached over HTTP/1.1 on pooled keep-alive sockets, with
/// no <see cref="HttpClient"/> in between. The relay's first byte crosses this client twice (the request out, the
/// response head and first token back), and on a core that idled since the last request <see cref="SocketsHttpHandler"/>
/// costs tens of microseconds each way in request-message, header-collection and content layers the relay does not
/// use; here the request is one pre-built head and one send, and the response is read straight off the socket.
/// What it speaks: requests with a Content-Length, responses framed by Content-Length, chunked encoding or the close
/// (RFC 9112), interim 1xx responses skipped; an answer the upstream gives before it takes the whole request body (a
/// 413, then a reset) is returned rather than the failed send. https upstreams use <see cref="UpstreamHttpBackend"/>.
/// </summary>
public sealed class Http11SocketBackend : IUpstreamBackend
{
    private const int MaxCachedTargets = 32;
    private const int SingleSendBytes = 64 * 1024;
    private static readonly TimeSpan IdleLimit = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan LifetimeLimit = TimeSpan.FromMinutes(30);

    private readonly UpstreamHttpBackendOptions _options;
    private readonly string _host;
    private readonly int _port;
    private readonly byte[] _headerTail;
    private readonly ConcurrentStack<Connection> _idle = new();
    private readonly ConcurrentDictionary<(HttpMethod, string), byte[]> _targets = new();
    private readonly Timer _pruner;
    private readonly Action _connectionClosed;
    private readonly Action<Connection> _release;
    private int _targetCount;
    private int _open;
    private volatile bool _disposed;
    private volatile ContentTypeLine? _lastContentType;

    public Http11SocketBackend(UpstreamHttpBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BaseAddress.Scheme != "http")
        {
            throw new ArgumentException("this client speaks plain http; use UpstreamHttpBackend for https", nameof(options));
        }

        _options = options;
        _host = options.BaseAddress.DnsSafeHost;
        _port = options.BaseAddress.Port;
        var tail = "Host: " + options.BaseAddress.Authority + "\r\n";
        if (options.ApiKey is { Length: > 0 } key)
        {
            if (!IsHeaderValue(key))
            {
                throw new ArgumentException("the upstream API key holds characters a header cannot carry", nameof(options));
            }

            tail += "Authorization: Bearer " + key + "\r\n";
        }

        _headerTail = Encoding.ASCII.GetBytes(tail);
        _connectionClosed = () => Interlocked.Decrement(ref _open);
        _release = Release;
        _pruner = new Timer(static state => ((Http11SocketBackend)state!).PruneIdle(), this, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
    }

    public string Name => "upstream";

    public Uri BaseAddress => _options.BaseAddress;

    /// <summary>Connections open now, idle or carrying a request (for tests and diagnostics).</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    public async Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        var isHead = request.Method == HttpMethod.Head;

        // GET and HEAD go without Content-Length (as UpstreamHttpBackend sends them), so bytes after their head would
        // be read by the upstream as the next request on the connection: their body is not sent.
        var hasBody = !isHead && request.Method != HttpMethod.Get;
        var body = hasBody ? request.Body : ReadOnlyMemory<byte>.Empty;
        var head = new RequestHead(TargetOf(request.Method, request.PathAndQuery), hasBody ? ContentTypeOf(request.ContentType) : [], hasBody ? body.Length : -1);
        for (var attempt = 0; ; attempt++)
        {
            var connection = RentIdle() ?? await ConnectAsync(cancellationToken);
            var reused = connection.Reused;
            try
            {
                return await ExchangeAsync(connection, head, body, isHead, cancellationToken);
            }
            catch (ClosedBeforeAnswerException e)
            {
                connection.Dispose();

                // A keep-alive connection the server closed while it sat in the pool fails on its next use before any
                // byte of an answer: the request never reached a handler, so it goes once more on a fresh connection
                // (as SocketsHttpHandler does). A fresh connection closing so is the upstream's failure.
                if (!reused || attempt > 0)
                {
                    throw new BackendUnavailableException($"the upstream closed the connection before answering: {e.Message}", e.InnerException);
                }
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }
    }

    private async Task<BackendResponse> ExchangeAsync(Connection connection, RequestHead head, ReadOnlyMemory<byte> body, bool isHead, CancellationToken cancellationToken)
    {
        var sendFailure = await SendRequestAsync(connection, head, body, _options.ResponseHeadersTimeout, cancellationToken);

        // The headers timeout and the caller's cancellation are attached after the request is on the wire: a timer
        // and a link cost tens of microseconds on a core that idled, and they only matter later.
        using var headersTimeout = new CancellationTokenSource();
        var receiving = ReceiveHeadAsync(connection, isHead, sendFailure, headersTimeout.Token);
        using var link = cancellationToken.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), headersTimeout);
        if (!receiving.IsCompleted)
        {
            headersTimeout.CancelAfter(_options.ResponseHeadersTimeout);
        }

        ResponseHead response;
        try
        {
            response = await receiving;
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackendUnavailableException($"the upstream sent no response headers within {_options.ResponseHeadersTimeout.TotalSeconds:0.###} s", e);
        }
        catch (OperationCanceledException e)
        {
            throw new OperationCanceledException(e.Message, e, cancellationToken);
        }
        catch (Http11ProtocolException e)
        {
            throw new BackendUnavailableException($"the upstream's response is not HTTP/1.1 this gateway reads: {e.Message}", e);
        }

        if (sendFailure is not null)
        {
            // The upstream answered without taking the whole request: the rest of it was never sent, so the
            // connection cannot carry another one.
            response = response with { KeepAlive = false };
        }

        connection.Reused = true;
        return new BackendResponse(response.StatusCode, response.ContentType, new ResponseBody(connection, response, _release));
    }

    /// <summary>
    /// Sends the request; returns null once it is sent whole, or the failure when the upstream reset or closed the
    /// connection before taking all of it. An upstream refusing a request from its head (413, 400) may answer and close
    /// with the body unread, so its answer is already on the connection: the caller reads for it before it reports the
    /// failure.
    /// </summary>
    private static async ValueTask<SocketException?> SendRequestAsync(Connection connection, RequestHead head, ReadOnlyMemory<byte> body, TimeSpan stallTimeout, CancellationToken cancellationToken)
    {
        // One send, one segment, when the request fits: it leaves whole. A larger body goes in its own send from the
        // caller's memory rather than being copied. (long: a body near int.MaxValue must not wrap the sum.)
        var single = (long)head.Length + body.Length <= SingleSendBytes;
        var length = single ? head.Length + body.Length : head.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            head.WriteTo(buffer);
            if (single)
            {
                body.Span.CopyTo(buffer.AsSpan(head.Length));

                // At most 64 KiB: the upstream's receive buffer takes it whether or not its handler reads, so this send
                // cannot stall, and the hot path arms no timer.
                await SendAllAsync(connection.Socket, buffer.AsMemory(0, length), cancellationToken);
                return null;
            }

            // A larger body waits on the upstream to read it. One that stops reading (and neither answers nor closes)
            // would hold this request, and its slot, for as long as the client waits: the send gets the headers
            // timeout too, as SocketsHttpHandler's send does.
            using var stalled = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            stalled.CancelAfter(stallTimeout);
            try
            {
                await SendAllAsync(connection.Socket, buffer.AsMemory(0, length), stalled.Token);
                await SendAllAsync(connection.Socket, body, stalled.Token);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new BackendUnavailableException($"the upstream took no more of the request within {stallTimeout.TotalSeconds:0.###} s", e);
            }

            return null;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
        {
            // Reset, aborted, or a broken pipe (Shutdown): the connection is gone, so the read that follows ends at
            // once with what the upstream sent before, if anything — it cannot wait on a peer still expecting the body.
            return e;
        }
        catch (SocketException e) when (connection.Reused)
        {
            throw new ClosedBeforeAnswerException(e.Message, e);
        }
        catch (SocketException e)
        {
            throw new BackendUnavailableException($"the upstream connection failed while the request was sent: {e.Message}", e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await socket.SendAsync(bytes, SocketFlags.None, cancellationToken);
            bytes = bytes[sent..];
        }
    }

    /// <summary>
    /// Reads the final response head (interim 1xx heads skipped); the body's first bytes stay buffered. After a send
    /// that <paramref name="sendFailure"/> cut short, a connection that ends without an answer fails as the send did.
    /// </summary>
    private static async Task<ResponseHead> ReceiveHeadAsync(Connection connection, bool isHead, SocketException? sendFailure, CancellationToken cancellationToken)
    {
        var receivedAny = false;
        while (true)
        {
            if (connection.BufferedCount > 0 && ResponseHead.TryParse(connection.Buffered, isHead, out var head, out var consumed))
            {
                connection.Consume(consumed);
                if (head!.StatusCode == 101)
                {
                    throw new Http11ProtocolException("the upstream switched protocols, which no request asked for");
                }

                if (head.StatusCode >= 200)
                {
                    return head;
                }

                continue;
            }

            int read;
            try
            {
                read = await connection.ReceiveAsync(ResponseHead.MaxBytes, cancellationToken);
            }
            catch (SocketException e) when (!receivedAny)
            {
                throw NoAnswer(connection, sendFailure, e);
            }
            catch (SocketException e)
            {
                throw new BackendUnavailableException($"the upstream connection failed before the response headers ended: {e.Message}", e);
            }

            if (read == 0)
            {
                if (!receivedAny)
                {
                    throw NoAnswer(connection, sendFailure, null);
                }

                throw new BackendUnavailableException("the upstream closed the connection before the response headers ended");
            }

            receivedAny = true;
        }
    }

    /// <summary>
    /// The connection ended before any byte of an answer. A pooled connection may be retried (see <see cref="SendAsync"/>);
    /// a fresh one whose send failed reports that failure, as it did before the read for an early answer was tried.
    /// </summary>
    private static Exception NoAnswer(Connection connection, SocketException? sendFailure, SocketException? readFailure)
    {
        if (sendFailure is not null && !connection.Reused)
        {
            return new BackendUnavailableException($"the upstream connection failed while the request was sent: {sendFailure.Message}", sendFailure);
        }

        var cause = sendFailure ?? readFailure;
        return new ClosedBeforeAnswerException(cause?.Message ?? "end of stream", cause);
    }

    private Connection? RentIdle()
    {
        while (_idle.TryPop(out var connection))
        {
            if (Environment.TickCount64 - connection.IdleSince < IdleLimit.TotalMilliseconds && connection.LooksReusable())
            {
                return connection;
            }

            connection.Dispose();
        }

        return null;
    }

    private async Task<Connection> ConnectAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _open) > _options.MaxConnections)
        {
            Interlocked.Decrement(ref _open);
            throw new BackendUnavailableException($"all {_options.MaxConnections} upstream connections are in use");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var connection = new Connection(socket, _connectionClosed);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(_host, _port, timeout.Token);
            return connection;
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
        {
            connection.Dispose();
            throw new OperationCanceledException(e.Message, e, cancellationToken);
        }
        catch (OperationCanceledException e)
        {
            connection.Dispose();
            throw new BackendUnavailableException($"the upstream could not be reached within {_options.ConnectTimeout.TotalSeconds:0.###} s", e);
        }
        catch (SocketException e)
        {
            connection.Dispose();
            throw new BackendUnavailableException($"the upstream could not be reached: {e.Message}", e);
        }
    }

    /// <summary>A connection whose response ended cleanly goes back to the pool unless it is old or the backend is gone.</summary>
    private void Release(Connection connection)
    {
        if (_disposed || Environment.TickCount64 - connection.CreatedAt > LifetimeLimit.TotalMilliseconds)
        {
            connection.Dispose();
            return;
        }

        connection.IdleSince = Environment.TickCount64;
        _idle.Push(connection);
        if (_disposed && _idle.TryPop(out var late))
        {
            late.Dispose();
        }
    }

    /// <summary>Closes connections idle longer than the limit (the pool is a stack, so those sit at its bottom).</summary>
    private void PruneIdle()
    {
        if (_idle.IsEmpty)
        {
            return;
        }

        var kept = new List<Connection>();
        while (_idle.TryPop(out var connection))
        {
            if (Environment.TickCount64 - connection.IdleSince < IdleLimit.TotalMilliseconds)
            {
                kept.Add(connection);
            }
            else
            {
                connection.Dispose();
            }
        }

        for (var i = kept.Count - 1; i >= 0; i--)
        {
            Release(kept[i]);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        _pruner.Dispose();
        while (_idle.TryPop(out var connection))
        {
            connection.Dispose();
        }
    }

    /// <summary>
    /// The request line and the fixed headers of a method and path (the path as <see cref="Uri"/> escapes it under the
    /// base, as the HttpClient-based backend sends it); the first <see cref="MaxCachedTargets"/> are kept.
    /// </summary>
    private byte[] TargetOf(HttpMethod method, string pathAndQuery)
    {
        if (_targets.TryGetValue((method, pathAndQuery), out var known))
        {
            return known;
        }

        var uri = new Uri(_options.BaseAddress, _options.BaseAddress.AbsolutePath.TrimEnd('/') + pathAndQuery);
        var line = method.Method + " " + uri.PathAndQuery + " HTTP/1.1\r\n";
        if (!IsHeaderValue(line.AsSpan(0, line.Length - 2)) || method.Method.Contains(' ', StringComparison.Ordinal))
        {
            throw new ArgumentException("the request line would hold characters HTTP/1.1 does not allow", nameof(pathAndQuery));
        }

        var bytes = new byte[line.Length + _headerTail.Length];
        Encoding.ASCII.GetBytes(line, bytes);
        _headerTail.CopyTo(bytes, line.Length);
        if (Volatile.Read(ref _targetCount) < MaxCachedTargets && _targets.TryAdd((method, pathAndQuery), bytes))
        {
            Interlocked.Increment(ref _targetCount);
        }

        return bytes;
    }

    /// <summary>The Content-Type header line, sent only for a type that parses as a media type; the last one is remembered.</summary>
    private byte[] ContentTypeOf(string? contentType)
    {
        if (contentType is null)
        {
            return [];
        }

        var last = _lastContentType;
        if (last is not null && string.Equals(contentType, last.Value, StringComparison.Ordinal))
        {
            return last.Line;
        }

        if (!IsValidContentType(contentType))
        {
            return [];
        }

        var line = new ContentTypeLine(contentType, Encoding.ASCII.GetBytes("Content-Type: " + contentType + "\r\n"));
        _lastContentType = line;
        return line.Line;
    }

    private static bool IsValidContentType([NotNullWhen(true)] string? contentType) =>
        contentType is not null && IsHeaderValue(contentType) && MediaTypeHeaderValue.TryParse(contentType, out _);

    /// <summary>Visible ASCII and spaces only: nothing that could end a header line or smuggle another.</summary>
    private static bool IsHeaderValue(ReadOnlySpan<char> value)
    {
        foreach (var c in value)
        {
            if (c is < ' ' or > '~')
            {
                return false;
            }
        }

        return true;
    }

    private sealed record ContentTypeLine(string Value, byte[] Line);

    /// <summary>
    /// The request's head — request line, host, authorization, content type and length, blank line — kept as its
    /// cached parts and written straight into the buffer of the send, so no array is built for it per request.
    /// </summary>
    private readonly struct RequestHead
    {
        private readonly byte[] _target;
        private readonly byte[] _contentType;
        private readonly int _contentLength;

        /// <param name="target">The request line and fixed headers (<see cref="TargetOf"/>).</param>
        /// <param name="contentType">The Content-Type line, or empty.</param>
        /// <param name="contentLength">The body's length, or -1 for a request sent without Content-Length (GET, HEAD).</param>
        public RequestHead(byte[] target, byte[] contentType, int contentLength)
        {
            _target = target;
            _contentType = contentType;
            _contentLength = contentLength;
            Length = target.Length + contentType.Length + (contentLength >= 0 ? "Content-Length: ".Length + Digits(contentLength) + 2 : 0) + 2;
        }

        public int Length { get; }

        /// <summary>Writes the head's <see cref="Length"/> bytes at the start of <paramref name="destination"/>.</summary>
        public void WriteTo(Span<byte> destination)
        {
            _target.CopyTo(destination);
            var at = _target.Length;
            _contentType.CopyTo(destination[at..]);
            at += _contentType.Length;
            if (_contentLength >= 0)
            {
                "Content-Length: "u8.CopyTo(destination[at..]);
                at += "Content-Length: ".Length;
                if (!Utf8Formatter.TryFormat(_contentLength, destination[at..], out var digits))
                {
                    throw new InvalidOperationException("unreachable: the head's length counted the digits");
                }

                at += digits;
                "\r\n"u8.CopyTo(destination[at..]);
                at += 2;
            }

            "\r\n"u8.CopyTo(destination[at..]);
        }

        private static int Digits(int value)
        {
            var digits = 1;
            while (value >= 10)
            {
                value /= 10;
                digits++;
            }

            return digits;
        }
    }

    /// <summary>A pooled connection failed before any byte of an answer: the request may be sent once more.</summary>
    private sealed class ClosedBeforeAnswerException(string message, Exception? inner) : Exception(message, inner);
}
