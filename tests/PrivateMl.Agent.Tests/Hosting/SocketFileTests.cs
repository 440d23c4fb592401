using System.Net.Sockets;
using PrivateMl.Testing;
using static PrivateMl.Agent.Tests.AgentFixture;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>Stale socket files are replaced; a live one is never stolen.</summary>
public sealed class SocketFileTests
{
    [Fact]
    public async Task Accepts_StaleSocketFile()
    {
        var directory = Directory.CreateTempSubdirectory("pml-agent-").FullName;
        var path = Path.Combine(directory, "dstack.sock");
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            // Bound, never listening, then moved away from the path .NET would unlink on close: a stale socket file.
            var bound = Path.Combine(directory, "bound.sock");
            stale.Bind(new UnixDomainSocketEndPoint(bound));
            File.Move(bound, path);
        }

        Assert.True(File.Exists(path));
        await using (var agent = await StartAsync(directory: directory))
        {
            var (status, _) = await agent.PostAsync("/Version", "{}");
            Assert.Equal(200, status);
        }

        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Rejects_SocketServedByAnotherProcess()
    {
        await using var first = await StartAsync();
        var error = await Assert.ThrowsAnyAsync<IOException>(() => StartAsync(o =>
        {
            o.TappdSocketPath = null;
            o.StateDirectory = Path.Combine(first.Directory, "state2");
        }, directory: first.Directory));
        Assert.Contains("already serving", error.Message, StringComparison.Ordinal);

        var (status, _) = await first.PostAsync("/Version", "{}");
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task Rejects_RegularFileWithContent()
    {
        var directory = Directory.CreateTempSubdirectory("pml-agent-").FullName;
        await File.WriteAllTextAsync(Path.Combine(directory, "dstack.sock"), "precious", TestContext.Current.CancellationToken);
        await Assert.ThrowsAnyAsync<IOException>(() => StartAsync(directory: directory));
        Assert.Equal("precious", await File.ReadAllTextAsync(Path.Combine(directory, "dstack.sock"), TestContext.Current.CancellationToken));
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Tcp_ServesBothApis()
    {
        var port = FreePort.OnLoopback();
        await using var agent = await StartAsync(o => o.ListenUrl = new Uri($"http://127.0.0.1:{port}"));
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        var (dstackStatus, _) = await PostAsync(client, "/GetQuote", "{\"report_data\":\"01\"}");
        var (tappdStatus, _) = await PostAsync(client, "/prpc/Tappd.Info", "{}");
        Assert.Equal(200, dstackStatus);
        Assert.Equal(200, tappdStatus);
    }
}
