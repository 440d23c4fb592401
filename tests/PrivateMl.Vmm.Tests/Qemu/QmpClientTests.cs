using System.Net.Sockets;
using System.Text;
using PrivateMl.Vmm.Qemu;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.Qemu;

/// <summary>The QMP exchange graceful stop relies on, against an in-process QMP server.</summary>
public sealed class QmpClientTests
{
    [Fact]
    public async Task Powerdown_NegotiatesThenPressesThePowerButton_SkippingEvents()
    {
        using var dir = new TempDir();
        await using var qmp = new FakeQmp(dir.File("qmp.sock"));

        await QmpClient.PowerdownAsync(qmp.Path, TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal(["qmp_capabilities", "system_powerdown"], qmp.Commands);
    }

    [Fact]
    public async Task ARefusedCommand_IsGuestUnreachable_WithQemusReason()
    {
        using var dir = new TempDir();
        await using var qmp = new FakeQmp(dir.File("qmp.sock"), failCommand: "system_powerdown");

        var e = await Assert.ThrowsAsync<VmmException>(() => QmpClient.PowerdownAsync(qmp.Path, TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.GuestUnreachable, e.Code);
        Assert.Contains("injected refusal", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoSocket_IsGuestUnreachable()
    {
        using var dir = new TempDir();

        var e = await Assert.ThrowsAsync<VmmException>(() => QmpClient.PowerdownAsync(dir.File("qmp.sock"), TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.GuestUnreachable, e.Code);
    }

    [Fact]
    public async Task AQemuThatNeverGreets_EndsAtTheDeadline()
    {
        using var dir = new TempDir();
        await using var qmp = new FakeQmp(dir.File("qmp.sock"), silent: true);

        var e = await Assert.ThrowsAsync<VmmException>(() => QmpClient.PowerdownAsync(qmp.Path, TimeSpan.FromMilliseconds(300), TestContext.Current.CancellationToken));

        Assert.Equal(VmmErrorCode.GuestUnreachable, e.Code);
        Assert.Contains("no answer", e.Message, StringComparison.Ordinal);
        Assert.Empty(qmp.Commands);
    }

    [Fact]
    public async Task AnEndlessLine_IsRefused_NotBuffered()
    {
        using var dir = new TempDir();
        var path = dir.File("qmp.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var ct = TestContext.Current.CancellationToken;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptAsync(ct);
            var chunk = Encoding.ASCII.GetBytes(new string('x', 8192));
            try
            {
                for (var k = 0; k < 64; k++)
                {
                    await client.SendAsync(chunk, ct);
                }
            }
            catch (SocketException)
            {
                // The client gave up, as it should.
            }
        }, ct);

        var e = await Assert.ThrowsAsync<VmmException>(() => QmpClient.PowerdownAsync(path, TimeSpan.FromSeconds(30), ct));
        await server;

        Assert.Equal(VmmErrorCode.GuestUnreachable, e.Code);
        Assert.Contains("64 KiB", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SocketPaths_LongerThanSunPath_DoNotFit()
    {
        Assert.True(QmpClient.SocketPathFits("/tmp/" + new string('a', 102)));
        Assert.False(QmpClient.SocketPathFits("/tmp/" + new string('a', 103)));
    }

    private sealed class TempDir : IDisposable
    {
        private readonly string root = Directory.CreateTempSubdirectory("pml-qmp-").FullName;

        public string File(string name) => Path.Combine(root, name);

        public void Dispose() => Directory.Delete(root, recursive: true);
    }
}
