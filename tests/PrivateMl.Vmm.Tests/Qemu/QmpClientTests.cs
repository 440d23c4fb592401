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
    public async Task AStaleSocket_ThatStaysRefused_IsGuestUnreachable_AfterTheGrace()
    {
        using var dir = new TempDir();
        var path = dir.File("qmp.sock");
        using var bound = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        bound.Bind(new UnixDomainSocketEndPoint(path)); // the file exists, nothing listens: every connect is refused

        var e = await Assert.ThrowsAsync<VmmException>(() => QmpClient.PowerdownAsync(path, TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken));
        Assert.Equal(VmmErrorCode.GuestUnreachable, e.Code);
        Assert.DoesNotContain("no answer within", e.Message, StringComparison.Ordinal);
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
    public async Task ARealQemu_AcceptsThePowerButton()
    {
        var ct = TestContext.Current.CancellationToken;
        if (PrivateMl.Vmm.Qemu.HostCapabilities.Probe().QemuPath is not { } qemu)
        {
            const string Reason = "qemu-system-x86_64 is not installed; the real-QEMU QMP test is skipped";
            if (Environment.GetEnvironmentVariable(PrivateMl.Testing.SharedTestData.RequireVariable) == "1")
            {
                Assert.Fail(Reason + $", but {PrivateMl.Testing.SharedTestData.RequireVariable}=1 requires it");
            }

            Assert.Skip(Reason);
            return;
        }

        using var dir = new TempDir();
        var socket = dir.File("qmp.sock");
        var info = new System.Diagnostics.ProcessStartInfo(qemu) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-machine", "q35", "-accel", "tcg", "-nographic", "-nodefaults", "-monitor", "none", "-qmp", $"unix:{socket},server,wait=off", "-S" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(info)!;
        try
        {
            await Vms.VmLifecycleTests.WaitFor(() => File.Exists(socket) || process.HasExited, ct);
            if (process.HasExited)
            {
                Assert.Fail($"qemu exited: {await process.StandardError.ReadToEndAsync(ct)}");
            }

            // A paused machine without a guest: QEMU takes the button press (and emits POWERDOWN before its answer).
            await QmpClient.PowerdownAsync(socket, TimeSpan.FromSeconds(30), ct);
            Assert.False(process.HasExited);
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync(CancellationToken.None);
        }
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
