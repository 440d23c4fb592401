using System.Net;
using System.Net.Sockets;

namespace PrivateMl.Testing;

/// <summary>A loopback TCP port that was free a moment ago, for a server that must be given its port up front.</summary>
public static class FreePort
{
    /// <summary>Binds port 0 on 127.0.0.1, reads the port the OS chose and releases it.</summary>
    public static int OnLoopback()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
