using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PrivateMl.Testing;

/// <summary>
/// A TCP relay on loopback that records every byte between a client and a server, both directions: what a capture of
/// the loopback traffic would show. Point the client at <see cref="BaseAddress"/>. Each direction is kept on its own, and
/// both together in the order the relay read them (<see cref="BothDirections"/>), so a request and its answer stay in sequence.
/// </summary>
public sealed class LoopbackCapture : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Uri _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly MemoryStream _toServer = new();
    private readonly MemoryStream _toClient = new();
    private readonly MemoryStream _both = new();
    private readonly Lock _gate = new();
    private readonly Task _accepting;

    public LoopbackCapture(Uri target)
    {
        ArgumentNullException.ThrowIfNull(target);
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri BaseAddress { get; }

    /// <summary>Every byte sent by clients so far.</summary>
    public byte[] ClientToServer()
    {
        lock (_gate)
        {
            return _toServer.ToArray();
        }
    }

    /// <summary>Every byte sent by the server so far.</summary>
    public byte[] ServerToClient()
    {
        lock (_gate)
        {
            return _toClient.ToArray();
        }
    }

    /// <summary>Every byte of both directions so far, in the order the relay read them.</summary>
    public byte[] BothDirections()
    {
        lock (_gate)
        {
            return _both.ToArray();
        }
    }

    /// <summary><see cref="BothDirections"/> as UTF-8 text, to search the HTTP exchanges in it.</summary>
    public string Captured() => Encoding.UTF8.GetString(BothDirections());

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = RelayAsync(client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task RelayAsync(TcpClient client)
    {
        using (client)
        using (var server = new TcpClient())
        {
            try
            {
                await server.ConnectAsync(_target.Host, _target.Port, _stop.Token);
                var a = PumpAsync(client.GetStream(), server.GetStream(), _toServer, server.Client);
                var b = PumpAsync(server.GetStream(), client.GetStream(), _toClient, client.Client);
                await Task.WhenAll(a, b);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, MemoryStream record, Socket toSocket)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                lock (_gate)
                {
                    record.Write(buffer, 0, read);
                    _both.Write(buffer, 0, read);
                }

                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }

            toSocket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
