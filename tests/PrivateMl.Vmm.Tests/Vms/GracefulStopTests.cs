using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Vms;

/// <summary>
/// Graceful stop (ShutdownVm / <c>vmm stop</c>): the ACPI power button through QMP, <c>stopping</c> while qemu runs,
/// <c>stopped</c> once it exits, a kill at the deadline if the guest ignores the button — across a service restart —
/// and <c>stop --force</c> killing at once. The deadline is decided by a hand-moved clock, never by waiting.
/// </summary>
public sealed class GracefulStopTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 15, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Stop_PressesThePowerButton_ShowsStopping_ThenStoppedWhenTheGuestPowersOff()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        var clock = new ManualClock(Start);
        using var manager = box.Manager(time: clock);
        var (id, work) = await RunningVm(manager, ct);
        var pid = VmProcess.RunningPid(work)!.Value;
        await using var qmp = new FakeQmp(work.QmpSocket);

        await manager.ShutdownAsync(id, ct);
        var stopping = manager.Info(work);
        var start = await Assert.ThrowsAsync<VmmException>(() => manager.StartAsync(id, ct));
        var resize = await Assert.ThrowsAsync<VmmException>(() => manager.ResizeAsync(new ResizeVmRequest { Id = id, Vcpu = 2 }, ct));

        Assert.Equal(["qmp_capabilities", "system_powerdown"], qmp.Commands);
        Assert.Equal("stopping", stopping.Status);
        Assert.Contains("ACPI power button pressed; qemu is killed at 2026-11-25T15:00:30Z", stopping.ShutdownProgress, StringComparison.Ordinal);
        Assert.False(work.Started);
        Assert.Equal(Start.AddSeconds(30).ToUnixTimeMilliseconds(), work.Stopping!.DeadlineMs);
        Assert.Equal(VmmErrorCode.InvalidState, start.Code);
        Assert.Contains("stopping", start.Message, StringComparison.Ordinal);
        Assert.Equal(VmmErrorCode.InvalidState, resize.Code);

        // The guest powers off: qemu exits by itself.
        System.Diagnostics.Process.GetProcessById(pid).Kill();
        await VmLifecycleTests.WaitFor(() => VmProcess.RunningPid(work) is null, ct);
        Assert.Equal("stopped", manager.Info(work).Status);
        Assert.Empty(await manager.EnforceStopDeadlinesAsync(ct));
        Assert.Null(work.Stopping);

        // And it starts again.
        await manager.StartAsync(id, ct);
        Assert.Equal("running", manager.Info(work).Status);
        await manager.RemoveAsync(id, ct);
    }

    [Fact]
    public async Task AGuestThatIgnoresTheButton_IsKilledAtTheDeadline_EvenAfterAServiceRestart()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        var clock = new ManualClock(Start);
        var manager = box.Manager(time: clock);
        var (id, work) = await RunningVm(manager, ct);
        var pid = VmProcess.RunningPid(work)!.Value;
        await using var qmp = new FakeQmp(work.QmpSocket);
        await manager.ShutdownAsync(id, ct);

        // The service restarts while the guest is (not) shutting down.
        manager.Dispose();
        using var restarted = box.Manager(time: clock);
        Assert.Equal("stopping", restarted.Info(restarted.WorkDir(id)).Status);

        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Empty(await restarted.EnforceStopDeadlinesAsync(ct));
        Assert.Equal(pid, VmProcess.RunningPid(work));

        // A second press keeps the first deadline.
        await restarted.ShutdownAsync(id, ct);
        Assert.Equal(Start.AddSeconds(30).ToUnixTimeMilliseconds(), work.Stopping!.DeadlineMs);

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal([id], await restarted.EnforceStopDeadlinesAsync(ct));
        Assert.Null(VmProcess.RunningPid(work));
        Assert.Equal("stopped", restarted.Info(work).Status);
        Assert.Null(work.Stopping);
        Assert.Equal(["qmp_capabilities", "system_powerdown", "qmp_capabilities", "system_powerdown"], qmp.Commands);
    }

    [Fact]
    public async Task StopForce_WhileStopping_KillsAtOnce()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager(time: new ManualClock(Start));
        var (id, work) = await RunningVm(manager, ct);
        await using var qmp = new FakeQmp(work.QmpSocket);
        await manager.ShutdownAsync(id, ct);
        Assert.Equal("stopping", manager.Info(work).Status);

        await manager.StopAsync(id, force: true, ct);

        Assert.Equal("stopped", manager.Info(work).Status);
        Assert.Null(VmProcess.RunningPid(work));
        Assert.Null(work.Stopping);
    }

    [Fact]
    public async Task WithoutAQmpSocket_StopEndsQemuAtOnce()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        using var manager = box.Manager(time: new ManualClock(Start));
        var (id, work) = await RunningVm(manager, ct);

        await manager.ShutdownAsync(id, ct);

        Assert.Equal("stopped", manager.Info(work).Status);
        Assert.Null(VmProcess.RunningPid(work));
        Assert.Null(work.Stopping);

        // Stopping a stopped VM is not an error.
        await manager.ShutdownAsync(id, ct);
        Assert.Equal("stopped", manager.Info(work).Status);
    }

    [Fact]
    public async Task AGuestAnnouncingPowerOff_IsStopping_AndKilledIfItHangs()
    {
        var ct = TestContext.Current.CancellationToken;
        using var box = new VmmSandbox();
        var clock = new ManualClock(Start);
        using var manager = box.Manager(time: clock);
        var (id, work) = await RunningVm(manager, ct);

        manager.RecordGuestEvent(id, "boot.progress", "done");
        manager.RecordGuestEvent(id, "shutdown.progress", "powering off");
        var info = manager.Info(work);

        Assert.Equal("stopping", info.Status);
        Assert.Equal("done", info.BootProgress);
        Assert.Contains("the guest is powering off", info.ShutdownProgress, StringComparison.Ordinal);
        Assert.Equal(["boot.progress", "shutdown.progress"], info.Events.Select(e => e.Event));
        Assert.Equal((ulong)Start.ToUnixTimeMilliseconds(), info.Events[0].Timestamp);
        clock.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal([id], await manager.EnforceStopDeadlinesAsync(ct));
        Assert.Equal("stopped", manager.Info(work).Status);
    }

    private static async Task<(string Id, VmWorkDir Work)> RunningVm(VmManager manager, CancellationToken ct)
    {
        var (id, work) = await VmmSandbox.RunningDevVmAsync(manager, "g", ct);
        Assert.Contains($"-qmp unix:{work.QmpSocket},server,wait=off", File.ReadAllText(work.SerialLog), StringComparison.Ordinal);
        return (id, work);
    }
}
