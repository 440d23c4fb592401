using System.Net;
using System.Net.Sockets;

namespace PrivateMl.Testing;

/// <summary>
/// A loopback TCP port held bound but not listening, so a connection to it is refused at once (Linux answers RST) and
/// no other process can take the port while the test runs — unlike a port released by <see cref="FreePort"/>.
/// </summary>
public sealed class RefusingPort : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public RefusingPort()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_socket.LocalEndPoint!).Port;
    }

    public int Port { get; }

    /// <summary><c>https://127.0.0.1:PORT</c>.</summary>
    public Uri HttpsUrl => new($"https://127.0.0.1:{Port}");

    public void Dispose() => _socket.Dispose();
}
