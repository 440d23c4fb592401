using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace PrivateMl.Gateway.Tests.Support;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port, started and stopped by the test. When the binary is absent the
/// test is skipped, unless PRIVATEML_REQUIRE_SHARED=1 (CI), where that is a failure.
/// </summary>
internal sealed class RedisServer : IDisposable
{
    private readonly Process _process;

    private RedisServer(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>Starts a server on <paramref name="port"/>, or on a free port.</summary>
    public static async Task<RedisServer> StartAsync(int? port = null)
    {
        var binary = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);
        if (binary is null)
        {
            const string reason = "redis-server is not installed (apt-get install -y redis-server)";
            if (Environment.GetEnvironmentVariable("PRIVATEML_REQUIRE_SHARED") == "1")
            {
                Assert.Fail(reason);
            }

            Assert.Skip(reason);
        }

        var listen = port ?? FreePort();
        var process = Process.Start(new ProcessStartInfo(binary, ["--port", listen.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        for (var i = 0; i < 200; i++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, listen, TestContext.Current.CancellationToken);
                return new RedisServer(process, listen);
            }
            catch (SocketException)
            {
                await Task.Delay(25, TestContext.Current.CancellationToken);
            }
        }

        process.Kill();
        throw new InvalidOperationException("redis-server did not start");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        try
        {
            _process.Kill();
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
