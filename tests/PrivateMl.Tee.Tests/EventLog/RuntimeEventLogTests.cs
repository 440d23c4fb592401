using System.Text;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.EventLog;

namespace PrivateMl.Tee.Tests.EventLog;

public sealed class RuntimeEventLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pml-eventlog-").FullName;

    private string LogPath => Path.Combine(_dir, "sub", "tdx_events.log");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Emit_ExtendsRtmr3WithDstackDigest_AndLogReplaysToIt()
    {
        var device = new RecordingTdxDevice();
        using var log = RuntimeEventLog.Open(device);

        var e = await log.EmitAsync("app-id", Convert.FromHexString("ea549f02e1a25fabd1cb788380e033ec5461b2ff"), TestContext.Current.CancellationToken);

        Assert.Equal("b01c7a2e6a406ae9cd5aa81451e4614e112b8f404df12e6ef506962c1a5279a94dc58da0923c4b7db89e26da9e538302", Convert.ToHexStringLower(e.Digest.Span));
        Assert.Equal(1, device.Extensions);
        Assert.True(log.Replay().Matches(3, device.Rtmr(3)));
        Assert.Equal([e], log.RuntimeEvents);
    }

    [Fact]
    public async Task Log_SurvivesRestart_AsDstackJsonLines()
    {
        var device = new RecordingTdxDevice();
        TdxEvent[] emitted;
        using (var log = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = LogPath }))
        {
            emitted =
            [
                await log.EmitAsync("system-preparing", ReadOnlyMemory<byte>.Empty, TestContext.Current.CancellationToken),
                await log.EmitAsync("compose-hash", new byte[32], TestContext.Current.CancellationToken),
                await log.EmitAsync("weird \"name\"\n", "payload"u8.ToArray(), TestContext.Current.CancellationToken),
            ];
        }

        var lines = File.ReadAllLines(LogPath);
        Assert.Equal(emitted.Select(e => e.ToJson()), lines);
        Assert.StartsWith("{\"imr\":3,\"event_type\":134217729,\"digest\":\"f9974020", lines[0], StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(LogPath));
        }

        using var reopened = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = LogPath });
        Assert.Equal(emitted, reopened.RuntimeEvents);
        Assert.Equal(3, device.Extensions);
        Assert.True(reopened.Replay().Matches(3, device.Rtmr(3)));

        await reopened.EmitAsync("after-restart", new byte[] { 1 }, TestContext.Current.CancellationToken);
        Assert.Equal(4, File.ReadAllLines(LogPath).Length);
        Assert.True(reopened.Replay().Matches(3, device.Rtmr(3)));
    }

    [Fact]
    public async Task ParallelEmits_AllLogged_InExtensionOrder()
    {
        var device = new RecordingTdxDevice();
        using var log = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = LogPath });

        await Task.WhenAll(Enumerable.Range(0, 64).Select(i => log.EmitAsync($"event-{i}", BitConverter.GetBytes(i)).AsTask()));

        Assert.Equal(64, log.RuntimeEvents.Count);
        Assert.Equal(64, log.RuntimeEvents.Select(e => e.Event).Distinct().Count());
        Assert.True(log.Replay().Matches(3, device.Rtmr(3)));
        Assert.Equal(log.RuntimeEvents, TdxEventLog.ParseLines(File.ReadAllText(LogPath)));
    }

    [Fact]
    public async Task BootEvents_ComeFirst_InJson()
    {
        var boot = new TdxEvent(0, 4, new byte[48], "", [0, 0, 0, 0]);
        using var log = RuntimeEventLog.Open(new RecordingTdxDevice(), new RuntimeEventLogOptions { BootEvents = [boot] });
        var runtime = await log.EmitAsync("x", ReadOnlyMemory<byte>.Empty, TestContext.Current.CancellationToken);

        Assert.Equal(new[] { boot, runtime }, log.GetEvents());
        Assert.Equal(TdxEventLog.Serialize([boot, runtime]), log.ToJson());
        Assert.Equal(new[] { boot, runtime }, TdxEventLog.Parse(log.ToJson()));
    }

    [Fact]
    public async Task DeviceFailure_LogsNothing()
    {
        var device = new RecordingTdxDevice { FailNextExtension = new IOException("device gone") };
        using var log = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = LogPath });

        await Assert.ThrowsAsync<IOException>(() => log.EmitAsync("x", new byte[] { 1 }, TestContext.Current.CancellationToken).AsTask());

        Assert.Empty(log.RuntimeEvents);
        Assert.Equal(0, new FileInfo(LogPath).Length);
    }

    [Fact]
    public async Task Rejects_OversizedPayload_BeforeExtending()
    {
        var device = new RecordingTdxDevice();
        using var log = RuntimeEventLog.Open(device);

        var e = await Assert.ThrowsAsync<AttestationException>(
            () => log.EmitAsync("x", new byte[TdxEventLogLimits.MaxPayloadBytes + 1], TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(ErrorCode.EventLogTooLarge, e.Code);
        Assert.Equal(0, device.Extensions);
    }

    [Fact]
    public async Task GetQuoteWithEvents_ReturnsLogMatchingQuote()
    {
        var device = new RecordingTdxDevice();
        using var log = RuntimeEventLog.Open(device);
        await log.EmitAsync("a", new byte[] { 1 }, TestContext.Current.CancellationToken);

        var (quote, events) = await log.GetQuoteWithEventsAsync(new byte[64], TestContext.Current.CancellationToken);

        Assert.True(RtmrReplay.Replay(events).Matches(3, quote.AsSpan(0, 48)));
    }

    [Theory]
    [InlineData("not json\n", ErrorCode.EventLogMalformed)]
    [InlineData("{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"a\",\"event_payload\":\"\"}", ErrorCode.EventLogMalformed)]
    [InlineData("{\"imr\":0,\"event_type\":1,\"digest\":\"000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\",\"event\":\"\",\"event_payload\":\"\"}\n", ErrorCode.EventLogMalformed)]
    [InlineData("{\"imr\":3,\"event_type\":134217729,\"digest\":\"000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\",\"event\":\"a\",\"event_payload\":\"\"}\n", ErrorCode.EventLogDigestMismatch)]
    public void Rejects_CorruptLogFile_AndLeavesItAlone(string content, ErrorCode expected)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(LogPath)!);
        File.WriteAllText(LogPath, content, new UTF8Encoding(false));

        var e = Assert.Throws<AttestationException>(() => RuntimeEventLog.Open(new RecordingTdxDevice(), new RuntimeEventLogOptions { LogFilePath = LogPath }));

        Assert.Equal(expected, e.Code);
        Assert.Equal(content, File.ReadAllText(LogPath));
    }
}
