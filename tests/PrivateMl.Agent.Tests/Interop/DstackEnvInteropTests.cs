using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Agent.Tests.Env;

namespace PrivateMl.Agent.Tests.Interop;

/// <summary>
/// Acceptance for encrypted env (issue 9): the unmodified npm <c>@phala/dstack-sdk</c> (tests/interop/dstack-env.js)
/// fetches the app's env key from a loopback GetAppEnvEncryptPubKey endpoint signed by our KMS signer, recovers our
/// root with <c>verifyEnvEncryptPublicKey</c> and <c>verifyEnvEncryptPublicKeyLegacy</c>, encrypts with
/// <c>encryptEnvVars</c>, and our agent — holding the same roots — opens the result at start.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DstackEnvInteropTests
{
    private const string Compose = "{\"manifest_version\":2,\"name\":\"interop-env\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"allowed_envs\":[\"HF_TOKEN\",\"OPENAI_API_KEY\"],\"kms_enabled\":true}";

    [Fact]
    public async Task DstackSdk_VerifiesOurSignature_AndOurAgentDecryptsItsCiphertext()
    {
        NodeInterop.RequireNodeModules();
        var directory = Directory.CreateTempSubdirectory("pml-env-interop-").FullName;
        try
        {
            var appId = SHA256.HashData(Encoding.UTF8.GetBytes(Compose))[..20];
            await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
            var envs = "[{\"key\":\"HF_TOKEN\",\"value\":\"hf_abc $HOME\"},{\"key\":\"OPENAI_API_KEY\",\"value\":\"sk-ünïcode\\n2\"},{\"key\":\"LD_PRELOAD\",\"value\":\"/tmp/x.so\"}]";

            var (exitCode, stdout, stderr) = await NodeInterop.RunAsync("dstack-env.js", new Dictionary<string, string?>
            {
                ["KMS_URL"] = kms.Url.ToString(),
                ["APP_ID"] = Convert.ToHexStringLower(appId),
                ["ENV_JSON"] = envs,
            });
            Assert.True(exitCode == 0 && stdout.Length > 0, $"node failed ({exitCode}): {stdout}\n{stderr}");
            using var result = JsonDocument.Parse(stdout);
            var root = result.RootElement;

            // The SDK recovers our KMS root key from both signatures.
            var trusted = "0x" + Convert.ToHexStringLower(LoopbackEnvKeyServer.TrustedSigner);
            Assert.Equal(trusted, root.GetProperty("signer_v1").GetString());
            Assert.Equal(trusted, root.GetProperty("signer_legacy").GetString());

            // Our agent, holding the KMS's roots, opens the SDK's ciphertext at start; LD_PRELOAD is not allowed.
            var shared = Path.Combine(directory, "shared");
            Directory.CreateDirectory(shared);
            File.WriteAllText(Path.Combine(directory, "app-compose.json"), Compose);
            File.WriteAllBytes(Path.Combine(shared, EncryptedEnvSetup.EncryptedEnvFileName), Convert.FromHexString(root.GetProperty("encrypted").GetString()!));
            WriteTestRoots(Path.Combine(directory, "state"));

            await using var agent = await AgentFixture.StartAsync(
                o =>
                {
                    o.AppComposePath = Path.Combine(directory, "app-compose.json");
                    o.EncryptedEnvPath = Path.Combine(shared, EncryptedEnvSetup.EncryptedEnvFileName);
                },
                directory);
            var opened = agent.App.Services.GetRequiredService<AgentRuntime>().DecryptedEnv;
            Assert.Equal(["HF_TOKEN", "OPENAI_API_KEY"], opened.Select(v => v.Key));
            Assert.Equal(["hf_abc $HOME", "sk-ünïcode\n2"], opened.Select(v => v.Value));
            Assert.Equal(
                "HF_TOKEN=\"hf_abc \\$HOME\"\nOPENAI_API_KEY=\"sk-ünïcode\\n2\"\n",
                await File.ReadAllTextAsync(Path.Combine(shared, EncryptedEnvSetup.DecryptedEnvFileName), TestContext.Current.CancellationToken));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Puts the loopback KMS's roots where the agent's local key provider reads them (same roots, same keys).</summary>
    private static void WriteTestRoots(string state)
    {
        Directory.CreateDirectory(state);
        File.WriteAllBytes(Path.Combine(state, LocalKeyProvider.RootK256File), LoopbackEnvKeyServer.TestRootK256);
        using var caKey = DstackKdf.P256FromScalar(LoopbackEnvKeyServer.TestRootCaScalar);
        File.WriteAllText(Path.Combine(state, LocalKeyProvider.RootCaKeyFile), DstackKdf.ToPkcs8Pem(caKey));
        using var certificate = CertificateFactory.CreateRootCa(caKey, "Dstack", "Dstack KMS CA", DateTimeOffset.UtcNow.AddYears(1));
        File.WriteAllText(Path.Combine(state, LocalKeyProvider.RootCaCertificateFile), CertificateFactory.ToPem(certificate));
    }
}
