using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Kms;
using PrivateMl.Kms.Hosting;

namespace PrivateMl.Cli.Tests.Env;

/// <summary>
/// The whole encrypted-env flow in simulation: a KMS as <c>privateml kms serve --simulate</c> runs it (HTTPS on
/// loopback), the operator trusts its root (<c>privateml kms add</c>) and encrypts with <c>privateml env encrypt
/// --kms</c>, and a simulated agent with key provider kms gets its env key over RA-TLS and opens the variables at start.
/// </summary>
[Collection(nameof(EnvCommandsTests))]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class EnvKmsEndToEndTests : IDisposable
{
    private const string Compose = "{\"manifest_version\":2,\"name\":\"e2e-env\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"kms_enabled\":true,\"allowed_envs\":[\"HF_TOKEN\"]}";

    private readonly string _directory = Directory.CreateTempSubdirectory("pml-env-e2e-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task EnvEncryptedWithCli_AgainstSimulatedKms_IsOpenedByAgentWithKmsKeys()
    {
        var ct = TestContext.Current.CancellationToken;
        var simulator = Path.Combine(_directory, "tdx-simulator");
        using var kmsTd = await SimulatedKmsTd.OpenAsync(simulator, TimeProvider.System);
        var kmsOptions = new KmsOptions
        {
            StateDirectory = Path.Combine(_directory, "kms"),
            ListenUrl = new Uri("https://127.0.0.1:0"),
            Simulated = true,
            QuoteSource = kmsTd.QuoteSource,
        };
        await using var kms = await KmsHost.BuildAsync(kmsOptions, kmsTd.Trust, TimeProvider.System, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning), cancellationToken: ct);
        await kms.StartAsync(ct);
        var kmsUrl = kms.Urls.Single();

        string rootKey;
        using (var client = new KmsClient(new Uri(kmsUrl)))
        using (var meta = await client.CallAsync("GetMeta", null, ct))
        {
            rootKey = meta.RootElement.GetProperty("k256_pubkey").GetString()!;
        }

        var trustFile = Path.Combine(_directory, "trusted.json");
        var composePath = Path.Combine(_directory, "app-compose.json");
        var envFile = Path.Combine(_directory, "secrets.env");
        var shared = Path.Combine(_directory, "shared");
        Directory.CreateDirectory(shared);
        var blob = Path.Combine(shared, EncryptedEnvSetup.EncryptedEnvFileName);
        await File.WriteAllTextAsync(composePath, Compose, ct);
        await File.WriteAllTextAsync(envFile, "HF_TOKEN=hf_secret\nNOT_ALLOWED=x\n", ct);

        Assert.Equal(0, Run("kms", "add", rootKey, "--trust-file", trustFile).Exit);
        var (exit, _, error) = Run("env", "encrypt", "--kms", kmsUrl, "--app-compose", composePath, "--env-file", envFile, "--out", blob, "--trust-file", trustFile);
        Assert.True(exit == 0, error);
        Assert.Contains("signed by trusted KMS key " + rootKey, error, StringComparison.Ordinal);

        var agentOptions = new AgentOptions
        {
            SocketPath = Path.Combine(_directory, "dstack.sock"),
            TappdSocketPath = null,
            StateDirectory = _directory,
            AppComposePath = composePath,
            KmsUrl = new Uri(kmsUrl),
            EncryptedEnvPath = blob,
        };
        await using var agent = GuestAgentHost.BuildSimulated(agentOptions, out var device, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        using (device)
        {
            await agent.StartAsync(ct);
            Assert.IsType<KmsKeyProvider>(agent.Services.GetRequiredService<IKeyProvider>());
            var opened = agent.Services.GetRequiredService<AgentRuntime>().DecryptedEnv;
            Assert.Equal("HF_TOKEN", Assert.Single(opened).Key);
            Assert.Equal("hf_secret", opened[0].Value);
            Assert.Equal("HF_TOKEN=hf_secret\n", await File.ReadAllTextAsync(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvFileName), ct));
            Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes(Compose))[..20], agent.Services.GetRequiredService<AgentRuntime>().AppKeys.AppId.ToArray());
            await agent.StopAsync(ct);
        }
    }

    private static (int Exit, string Out, string Err) Run(params string[] args) => EnvCommandsTests.Run(args);
}
