using static PrivateMl.Agent.Tests.AgentFixture;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>The state directory is the identity: a restarted agent is the same app with the same keys.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task Restart_KeepsAppIdentityAndKeys_AndStartsAFreshRtmr3()
    {
        var directory = Directory.CreateTempSubdirectory("pml-agent-").FullName;
        string firstInfo;
        string firstKey;
        await using (var first = await StartAsync(o => o.TappdSocketPath = null, directory: directory))
        {
            var (_, info) = await first.PostAsync("/Info", "{}");
            firstInfo = info.GetProperty("app_id").GetString() + "/" + info.GetProperty("instance_id").GetString();
            firstKey = (await first.PostAsync("/GetKey", "{\"path\":\"k\"}")).Body.GetProperty("key").GetString()!;
            var (emitStatus, _) = await first.PostAsync("/EmitEvent", "{\"event\":\"before-restart\",\"payload\":\"\"}");
            Assert.Equal(200, emitStatus);
        }

        try
        {
            await RestartAsync(directory, firstInfo, firstKey);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task RestartAsync(string directory, string firstInfo, string firstKey)
    {
        await using var second = await StartAsync(o => o.TappdSocketPath = null, directory: directory);
        var (_, again) = await second.PostAsync("/Info", "{}");
        Assert.Equal(firstInfo, again.GetProperty("app_id").GetString() + "/" + again.GetProperty("instance_id").GetString());
        Assert.Equal(firstKey, (await second.PostAsync("/GetKey", "{\"path\":\"k\"}")).Body.GetProperty("key").GetString());

        // A simulated restart is a reboot: the app event from before is gone and the log still replays.
        var (_, quote) = await second.PostAsync("/GetQuote", "{}");
        Assert.DoesNotContain("before-restart", quote.GetProperty("event_log").GetString(), StringComparison.Ordinal);
    }
}
