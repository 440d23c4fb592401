using PrivateMl.Attestation.EventLog;

namespace PrivateMl.Attestation.Tests.EventLog;

public class DstackAppIdentityTests
{
    [Fact]
    public void Reads_ProductionIdentity()
    {
        var id = DstackAppIdentity.FromEventLog(DstackEventLogVector.Production.ToEvents());

        Assert.Equal("ab84a54bdaf082be00ea40e8e37bdeb5c15c58de", Hex(id.AppId));
        Assert.Equal("eb6b019edd1f076327ed9466d0fc5df5a96e80b0", Hex(id.InstanceId));
        Assert.Equal("62dd36d22b7d704aaa4d598226801ed4e6a3bfd17dde762b2efd9876768be800", Hex(id.ComposeHash));
        Assert.Equal("6809f73ca56b2dfba9918bdb9709608f30284af4fbb50e707e3270a0436f1657", Hex(id.OsImageHash));
        Assert.Equal("c658b8d8b701b1ae17ddd64a6a9c2ac8d66cc41021629062c25d3be41b89afed", Hex(id.MrKms));
        Assert.Equal("kms", id.KeyProviderName);
        Assert.StartsWith("3059301306072a8648ce3d0201", id.KeyProviderId, StringComparison.Ordinal);
        Assert.StartsWith("{\"name\":\"kms\",\"id\":\"3059", id.KeyProviderInfo, StringComparison.Ordinal);
        Assert.True(id.SystemReady);
        Assert.Null(id.StorageFs);
        Assert.Empty(id.AppEvents);
    }

    [Fact]
    public void Reads_SimulatorIdentity_WithoutKmsEvents()
    {
        var id = DstackAppIdentity.FromEventLog(DstackEventLogVector.Simulator.ToEvents());

        Assert.Equal("ea549f02e1a25fabd1cb788380e033ec5461b2ff", Hex(id.AppId));
        Assert.Equal("ea549f02e1a25fabd1cb788380e033ec5461b2ffe4328d753642cf035452e48b", Hex(id.ComposeHash));
        Assert.Null(id.OsImageHash);
        Assert.Null(id.MrKms);
    }

    [Fact]
    public void Ignores_EventsEmittedAfterSystemReady()
    {
        var spoof = TdxEvent.CreateRuntime(DstackEventNames.ComposeHash, new byte[32]);
        var appEvent = TdxEvent.CreateRuntime("LIUM_MINER_HOTKEY", [1]);
        var id = DstackAppIdentity.FromEventLog([.. DstackEventLogVector.Simulator.ToEvents(), spoof, appEvent]);

        Assert.Equal("ea549f02e1a25fabd1cb788380e033ec5461b2ffe4328d753642cf035452e48b", Hex(id.ComposeHash));
        Assert.Equal([spoof, appEvent], id.AppEvents);
    }

    [Fact]
    public void Ignores_NamedEventsOutsideRtmr3()
    {
        var notRtmr3 = new TdxEvent(2, TdxEvent.RuntimeEventType, [], DstackEventNames.AppId, [9, 9]);
        var id = DstackAppIdentity.FromEventLog([notRtmr3]);

        Assert.Null(id.AppId);
        Assert.False(id.SystemReady);
    }

    [Fact]
    public void Reads_OldComposeHashName_AndStorageFs()
    {
        var id = DstackAppIdentity.FromEventLog(
        [
            TdxEvent.CreateRuntime(DstackEventNames.UpgradedAppId, [7]),
            TdxEvent.CreateRuntime(DstackEventNames.KeyProvider, "not json"u8),
            TdxEvent.CreateRuntime(DstackEventNames.StorageFs, "zfs"u8),
        ]);

        Assert.Equal("07", Hex(id.ComposeHash));
        Assert.Equal("zfs", id.StorageFs);
        Assert.Equal("not json", id.KeyProviderInfo);
        Assert.Null(id.KeyProviderName);
    }

    private static string? Hex(ReadOnlyMemory<byte>? value) => value is { } v ? Convert.ToHexStringLower(v.Span) : null;
}
