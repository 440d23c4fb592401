using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PrivateMl.Inference.Tests.Upstream.Http11;

/// <summary>
/// A raw HTTP/1.1 peer on 127.0.0.1 for the socket backend's tests: it accepts connections and runs the test's script
/// on each, which reads requests (head up to the blank line plus a Content-Length body) and writes exactly the bytes
/// the test gives — in pieces, late, malformed or cut off — so every framing and connection case can be staged.
/// </summary>
internal sealed class ScriptedServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentQueue<ScriptedConnection> _connections = new();
    private readonly ConcurrentQueue<Task> _scripts = new();
    private readonly Func<ScriptedConnection, CancellationToken, Task> _script;
    private readonly Task _accepting;

    private ScriptedServer(Func<ScriptedConnection, CancellationToken, Task> script)
    {
        _script = script;
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri BaseAddress { get; }

    /// <summary>Connections accepted so far, in order.</summary>
    public IReadOnlyList<ScriptedConnection> Connections => [.. _connections];

    /// <summary>Runs <paramref name="script"/> on every connection the server accepts.</summary>
    public static ScriptedServer Start(Func<ScriptedConnection, CancellationToken, Task> script) => new(script);

    /// <summary>Answers every request on every connection with <paramref name="response"/>, in one write.</summary>
    public static ScriptedServer Answering(string response) => Start(async (connection, cancellationToken) =>
    {
        while (await connection.ReadRequestAsync(cancellationToken) is not null)
        {
            await connection.WriteAsync(response, cancellationToken);
        }
    });

    /// <summary>Reads one request on each connection, writes <paramref name="sent"/> (whole or part of an answer) and closes.</summary>
    public static ScriptedServer AnsweringOnceThenClosing(string sent) => Start(async (connection, cancellationToken) =>
    {
        await connection.ReadRequestAsync(cancellationToken);
        await connection.WriteAsync(sent, cancellationToken);
        connection.Close();
    });

    /// <summary>Answers the requests, on whichever connection they come, with <paramref name="responses"/> in turn.</summary>
    public static ScriptedServer AnsweringInTurn(params string[] responses)
    {
        var next = new System.Collections.Concurrent.ConcurrentQueue<string>(responses);
        return Start(async (connection, cancellationToken) =>
        {
            while (await connection.ReadRequestAsync(cancellationToken) is not null && next.TryDequeue(out var response))
            {
                await connection.WriteAsync(response, cancellationToken);
            }
        });
    }

    /// <summary>Waits (30 s at most) until <paramref name="count"/> connections were accepted and returns the last.</summary>
    public async Task<ScriptedConnection> ConnectionAsync(int count)
    {
        await WaitUntilAsync(() => _connections.Count >= count);
        return Connections[count - 1];
    }

    public static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(5, timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        foreach (var connection in _connections)
        {
            connection.Dispose();
        }

        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        foreach (var script in _scripts)
        {
            try
            {
                await script;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
            {
                // A script cut short by the server's disposal or by the client closing: the test asserts on what it saw.
            }
        }

        _stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            var socket = await _listener.AcceptSocketAsync(_stopping.Token);
            socket.NoDelay = true;
            var connection = new ScriptedConnection(socket);
            _connections.Enqueue(connection);
            _scripts.Enqueue(Task.Run(() => _script(connection, _stopping.Token)));
        }
    }
}

/// <summary>One accepted connection: the requests read on it so far and the means to answer them.</summary>
internal sealed class ScriptedConnection(Socket socket) : IDisposable
{
    private readonly ConcurrentQueue<string> _requests = new();
    private readonly TaskCompletionSource _endOfStream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[] _buffer = new byte[16 * 1024];
    private int _buffered;

    /// <summary>Each request read, head and body, as Latin-1 text.</summary>
    public IReadOnlyList<string> Requests => [.. _requests];

    /// <summary>Completes when the client closed its side (a read returned 0 or failed).</summary>
    public Task EndOfStream => _endOfStream.Task;

    /// <summary>Reads the next request whole; null when the client closed the connection first.</summary>
    public async Task<string?> ReadRequestAsync(CancellationToken cancellationToken)
    {
        var headEnd = await ReceiveHeadAsync(cancellationToken);
        if (headEnd < 0)
        {
            return null;
        }

        var head = Encoding.Latin1.GetString(_buffer, 0, headEnd + 4);
        var length = head.Split("\r\n")
            .Where(line => line.StartsWith("content-length:", StringComparison.OrdinalIgnoreCase))
            .Select(line => int.Parse(line["content-length:".Length..].Trim(), CultureInfo.InvariantCulture))
            .FirstOrDefault();
        while (_buffered < headEnd + 4 + length)
        {
            if (!await ReceiveAsync(cancellationToken))
            {
                return null;
            }
        }

        var total = headEnd + 4 + length;
        var request = Encoding.Latin1.GetString(_buffer, 0, total);
        Buffer.BlockCopy(_buffer, total, _buffer, 0, _buffered - total);
        _buffered -= total;
        _requests.Enqueue(request);
        return request;
    }

    /// <summary>
    /// Reads the next request's head only (recorded in <see cref="Requests"/>) and leaves its body unread, as a server
    /// that answers before it takes the body; null when the client closed the connection first.
    /// </summary>
    public async Task<string?> ReadHeadAsync(CancellationToken cancellationToken)
    {
        var headEnd = await ReceiveHeadAsync(cancellationToken);
        if (headEnd < 0)
        {
            return null;
        }

        var head = Encoding.Latin1.GetString(_buffer, 0, headEnd + 4);
        Buffer.BlockCopy(_buffer, headEnd + 4, _buffer, 0, _buffered - (headEnd + 4));
        _buffered -= headEnd + 4;
        _requests.Enqueue(head);
        return head;
    }

    public Task WriteAsync(string text, CancellationToken cancellationToken) => WriteAsync(Encoding.Latin1.GetBytes(text), cancellationToken);

    public async Task WriteAsync(byte[] bytes, CancellationToken cancellationToken)
    {
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += await socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None, cancellationToken);
        }
    }

    /// <summary>Writes <paramref name="text"/> a few bytes per send with a pause between, so the client sees it split.</summary>
    public async Task WriteInPiecesAsync(string text, int pieceBytes, CancellationToken cancellationToken)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        for (var at = 0; at < bytes.Length; at += pieceBytes)
        {
            await WriteAsync(bytes[at..Math.Min(at + pieceBytes, bytes.Length)], cancellationToken);
            await Task.Delay(1, cancellationToken);
        }
    }

    /// <summary>Closes the connection: FIN after whatever was written.</summary>
    public void Close()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }

        socket.Close();
    }

    /// <summary>Aborts the connection: an RST, with nothing more written.</summary>
    public void Reset()
    {
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    public void Dispose() => socket.Dispose();

    /// <summary>Receives until a request head is buffered; returns where it ends, or -1 when the client closed first.</summary>
    private async Task<int> ReceiveHeadAsync(CancellationToken cancellationToken)
    {
        int headEnd;
        while ((headEnd = _buffer.AsSpan(0, _buffered).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (!await ReceiveAsync(cancellationToken))
            {
                return -1;
            }
        }

        return headEnd;
    }

    private async Task<bool> ReceiveAsync(CancellationToken cancellationToken)
    {
        if (_buffered == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        int read;
        try
        {
            read = await socket.ReceiveAsync(_buffer.AsMemory(_buffered), SocketFlags.None, cancellationToken);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            read = 0;
        }

        if (read == 0)
        {
            _endOfStream.TrySetResult();
            return false;
        }

        _buffered += read;
        return true;
    }
}
