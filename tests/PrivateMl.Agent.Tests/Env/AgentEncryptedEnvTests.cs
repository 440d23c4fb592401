using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>
/// The agent opens the encrypted env at start as dstack-util setup does (research/dstack.md §7.3): with the app's env
/// key from its key provider, keeping only allowed_envs, writing .decrypted-env and .decrypted-env.json (0600).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class AgentEncryptedEnvTests
{
    private const string Compose = "{\"manifest_version\":2,\"name\":\"env-test\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"allowed_envs\":[\"API_KEY\",\"MODEL\"],\"local_key_provider_enabled\":true}";

    [Fact]
    public async Task Start_DecryptsAllowedVariables_AndWritesDstackFiles()
    {
        var directory = Directory.CreateTempSubdirectory("pml-env-").FullName;
        try
        {
            var shared = Prepare(directory, EncryptTo(directory,
                [new EnvVariable("MODEL", "llama 3"), new EnvVariable("API_KEY", "sk-\"1$"), new EnvVariable("PATH", "/evil")]));

            await using (var agent = await AgentFixture.StartAsync(o => Configure(o, directory), directory))
            {
                var runtime = agent.App.Services.GetRequiredService<AgentRuntime>();
                Assert.Equal(["API_KEY", "MODEL"], runtime.DecryptedEnv.Select(v => v.Key));

                var text = await File.ReadAllTextAsync(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvFileName), TestContext.Current.CancellationToken);
                Assert.Equal("API_KEY=\"sk-\\\"1\\$\"\nMODEL=\"llama 3\"\n", text);
                var json = await File.ReadAllTextAsync(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvJsonFileName), TestContext.Current.CancellationToken);
                Assert.Equal("{\"API_KEY\":\"sk-\\\"1$\",\"MODEL\":\"llama 3\"}", json);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvFileName)));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvJsonFileName)));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Start_FailsClosed_OnTamperedEnv_AndWritesNothing()
    {
        var directory = Directory.CreateTempSubdirectory("pml-env-").FullName;
        try
        {
            var blob = EncryptTo(directory, [new EnvVariable("MODEL", "x")]);
            blob[^1] ^= 0x80;
            var shared = Prepare(directory, blob);

            var error = await Assert.ThrowsAsync<AttestationException>(() => AgentFixture.StartAsync(o => Configure(o, directory), directory));
            Assert.Equal(ErrorCode.EnvDecryptionFailed, error.Code);
            Assert.False(File.Exists(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvFileName)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Start_WithEmptyEncryptedEnv_RemovesStaleOutputs()
    {
        var directory = Directory.CreateTempSubdirectory("pml-env-").FullName;
        try
        {
            var shared = Prepare(directory, []);
            var stale = Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvFileName);
            await File.WriteAllTextAsync(stale, "OLD=1\n", TestContext.Current.CancellationToken);

            await using (var agent = await AgentFixture.StartAsync(o => Configure(o, directory), directory))
            {
                Assert.Empty(agent.App.Services.GetRequiredService<AgentRuntime>().DecryptedEnv);
                Assert.False(File.Exists(stale));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void ReadBlob_AcceptsHexOrRaw()
    {
        var path = Path.GetTempFileName();
        try
        {
            var blob = RandomNumberGenerator.GetBytes(80);
            File.WriteAllBytes(path, blob);
            Assert.Equal(blob, EncryptedEnvSetup.ReadBlob(path));
            File.WriteAllText(path, "0x" + Convert.ToHexStringLower(blob) + "\n");
            Assert.Equal(blob, EncryptedEnvSetup.ReadBlob(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("{}", 0)]
    [InlineData("not json", 0)]
    [InlineData("{\"allowed_envs\":[\"A\",\"B\",\"A\"]}", 2)]
    public void AllowedEnvs_FromCompose(string compose, int count)
    {
        Assert.Equal(count, EncryptedEnvSetup.AllowedEnvs(Encoding.UTF8.GetBytes(compose)).Count);
    }

    [Fact]
    public void AllowedEnvs_RejectsWrongType()
    {
        var error = Assert.Throws<AttestationException>(() => EncryptedEnvSetup.AllowedEnvs("{\"allowed_envs\":\"A\"}"u8));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    private static void Configure(AgentOptions options, string directory)
    {
        options.AppComposePath = Path.Combine(directory, "app-compose.json");
        options.EncryptedEnvPath = Path.Combine(directory, "shared", EncryptedEnvSetup.EncryptedEnvFileName);
    }

    /// <summary>Writes the compose file and the blob; returns the shared directory.</summary>
    private static string Prepare(string directory, byte[] blob)
    {
        var shared = Path.Combine(directory, "shared");
        Directory.CreateDirectory(shared);
        File.WriteAllText(Path.Combine(directory, "app-compose.json"), Compose);
        File.WriteAllBytes(Path.Combine(shared, EncryptedEnvSetup.EncryptedEnvFileName), blob);
        return shared;
    }

    /// <summary>Encrypts to the env key the agent's local key provider (state in <paramref name="directory"/>/state) will hold.</summary>
    private static byte[] EncryptTo(string directory, IReadOnlyList<EnvVariable> variables)
    {
        var appId = SHA256.HashData(Encoding.UTF8.GetBytes(Compose))[..20];
        using var provider = LocalKeyProvider.OpenOrCreate(Path.Combine(directory, "state"), RandomNumberGenerator.Create(), TimeProvider.System);
        using var keys = provider.GetAppKeysAsync(new AppKeyRequest(appId, new byte[20]), TestContext.Current.CancellationToken).AsTask().GetAwaiter().GetResult();
        return EncryptedEnv.Encrypt(EnvVariables.Serialize(variables), EncryptedEnv.PublicKeyOf(keys.EnvCryptKey), RandomNumberGenerator.Create());
    }
}
