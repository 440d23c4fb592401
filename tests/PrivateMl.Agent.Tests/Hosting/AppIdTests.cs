using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>
/// The app id the agent measures: dstack's default (compose hash, first 20 bytes), or the VM's <c>.instance_info</c>
/// app id, which only a KMS app may keep across a compose upgrade (dstack-util's rule).
/// </summary>
public sealed class AppIdTests
{
    private const string Compose = "{\"manifest_version\":2,\"name\":\"app-id-test\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\"}";

    private static readonly string DefaultAppId = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Compose))[..20]);

    [Fact]
    public async Task The_default_app_id_given_explicitly_is_measured()
    {
        var directory = Directory.CreateTempSubdirectory("pml-appid-").FullName;
        try
        {
            await using var agent = await AgentFixture.StartAsync(o => Configure(o, directory, DefaultAppId.ToUpperInvariant()), directory);
            var (status, info) = await agent.PostAsync("/Info", "{}");
            Assert.Equal(200, status);
            Assert.Equal(DefaultAppId, info.GetProperty("app_id").GetString());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Another_app_id_without_a_kms_is_refused_at_start()
    {
        var directory = Directory.CreateTempSubdirectory("pml-appid-").FullName;
        try
        {
            var other = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => AgentFixture.StartAsync(o => Configure(o, directory, other), directory));
            Assert.Contains("App upgrade is not supported without KMS", error.Message, StringComparison.Ordinal);
            Assert.Contains(other, error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("zz00000000000000000000000000000000000000")]
    [InlineData("00000000000000000000000000000000000000000000")]
    public void A_malformed_app_id_is_refused(string appId)
    {
        var options = new AgentOptions { AppId = appId };
        var error = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains("app id", error.Message, StringComparison.Ordinal);
    }

    private static void Configure(AgentOptions options, string directory, string appId)
    {
        var compose = Path.Combine(directory, "app-compose.json");
        File.WriteAllText(compose, Compose);
        options.AppComposePath = compose;
        options.AppId = appId;
    }
}
