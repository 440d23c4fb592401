using System.Buffers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace PrivateMl.Vmm.Qemu;

/// <summary>
/// A minimal QEMU Machine Protocol client over the VM's <c>qmp.sock</c> (the socket dstack-vmm's <c>-qmp
/// unix:&lt;wd&gt;/qmp.sock,server,wait=off</c> creates): read the greeting, leave negotiation mode with
/// <c>qmp_capabilities</c>, run one command. Every line read is bounded, asynchronous events are skipped, and the whole
/// exchange has a deadline, so a wedged qemu cannot hold the caller.
/// </summary>
public static class QmpClient
{
    /// <summary>The longest path a Unix socket address holds (sun_path is 108 bytes with its terminator).</summary>
    public const int MaxSocketPathBytes = 107;

    private const int MaxLineBytes = 64 * 1024;

    /// <summary>Whether qemu can be given (and we can reach) a socket at this path.</summary>
    public static bool SocketPathFits(string path) => Encoding.UTF8.GetByteCount(path ?? "") <= MaxSocketPathBytes;

    /// <summary>Sends <c>system_powerdown</c>: the ACPI power button, which asks the guest to shut itself down.</summary>
    public static Task PowerdownAsync(string socketPath, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ExecuteAsync(socketPath, "system_powerdown", timeout, cancellationToken);

    /// <summary>Runs one argument-less QMP command; a refusal, a malformed answer or no answer is a <see cref="VmmException"/> (GuestUnreachable).</summary>
    public static async Task ExecuteAsync(string socketPath, string command, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        if (!SocketPathFits(socketPath) || !File.Exists(socketPath))
        {
            throw new VmmException(VmmErrorCode.GuestUnreachable, $"no QMP socket at {socketPath}");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var ct = deadline.Token;
        try
        {
            using var socket = await ConnectAsync(socketPath, ct);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var reader = new LineReader(stream);
            using (var greeting = await reader.ReadJsonAsync(ct))
            {
                if (!greeting.RootElement.TryGetProperty("QMP", out _))
                {
                    throw new VmmException(VmmErrorCode.GuestUnreachable, "QMP: the socket did not greet as QMP");
                }
            }

            await RunAsync(stream, reader, "qmp_capabilities", ct);
            await RunAsync(stream, reader, command, ct);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new VmmException(VmmErrorCode.GuestUnreachable, $"QMP: no answer within {timeout.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is SocketException or IOException or JsonException)
        {
            throw new VmmException(VmmErrorCode.GuestUnreachable, $"QMP: {e.Message}");
        }
    }

    /// <summary>How long a refused connection is retried (a stale socket of a qemu that is gone stays refused).</summary>
    internal static readonly TimeSpan RefusedGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Connects, retrying a refused connection for <see cref="RefusedGrace"/>: qemu creates the socket file when it
    /// binds and listens a moment later, so a caller right after the VM's start (or a test) can find the file but be
    /// refused. A socket left by a qemu that has gone is refused for good and fails after the grace.
    /// </summary>
    private static async Task<Socket> ConnectAsync(string socketPath, CancellationToken ct)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                return socket;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && System.Diagnostics.Stopwatch.GetElapsedTime(started) < RefusedGrace)
            {
                socket.Dispose();
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), ct);
        }
    }

    private static async Task RunAsync(NetworkStream stream, LineReader reader, string command, CancellationToken ct)
    {
        await stream.WriteAsync(Encoding.UTF8.GetBytes($"{{\"execute\":\"{command}\"}}\n"), ct);
        while (true)
        {
            using var answer = await reader.ReadJsonAsync(ct);
            var root = answer.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new VmmException(VmmErrorCode.GuestUnreachable, "QMP: an answer that is not a JSON object");
            }

            if (root.TryGetProperty("return", out _))
            {
                return;
            }

            if (root.TryGetProperty("error", out var error))
            {
                var desc = error.ValueKind == JsonValueKind.Object && error.TryGetProperty("desc", out var d) ? d.ToString() : error.ToString();
                throw new VmmException(VmmErrorCode.GuestUnreachable, $"QMP {command}: {desc}");
            }

            // {"event": …} lines arrive at any time; they are not the answer.
        }
    }

    /// <summary>Newline-delimited reads with a bound on each line.</summary>
    private sealed class LineReader(Stream stream)
    {
        private readonly byte[] buffer = new byte[4096];
        private readonly ArrayBufferWriter<byte> line = new();
        private int start;
        private int end;

        public async Task<JsonDocument> ReadJsonAsync(CancellationToken ct)
        {
            while (true)
            {
                var text = await ReadLineAsync(ct);
                if (text.Length > 0)
                {
                    return JsonDocument.Parse(text);
                }
            }
        }

        private async Task<byte[]> ReadLineAsync(CancellationToken ct)
        {
            line.Clear();
            while (true)
            {
                if (start == end)
                {
                    start = 0;
                    end = await stream.ReadAsync(buffer, ct);
                    if (end == 0)
                    {
                        throw new IOException("qemu closed the QMP connection");
                    }
                }

                var newline = Array.IndexOf(buffer, (byte)'\n', start, end - start);
                var stop = newline < 0 ? end : newline;
                line.Write(buffer.AsSpan(start, stop - start));
                start = newline < 0 ? end : newline + 1;
                if (line.WrittenCount > MaxLineBytes)
                {
                    throw new IOException("a QMP line longer than 64 KiB");
                }

                if (newline >= 0)
                {
                    return line.WrittenSpan.Trim("\r "u8).ToArray();
                }
            }
        }
    }
}
