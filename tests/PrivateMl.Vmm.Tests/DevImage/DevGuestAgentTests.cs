using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Testing;
using PrivateMl.Vmm.DevImage;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.DevImage;

/// <summary>
/// The development guest's keys and env without a VM: the plan read from the shared folder, and the agent against a
/// real in-process KMS as <c>kms serve --simulate --simulator &lt;image&gt;/tdx-simulator</c> runs it — trusted only when
/// the guest installed the image's SIMULATED platform, refused (and the boot stopped, with the KMS's reason) otherwise.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DevGuestAgentTests : IDisposable
{
    private const string KmsCompose = "{\"manifest_version\":2,\"name\":\"devvm\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"kms_enabled\":true,\"allowed_envs\":[\"PRIVATEML_API_KEY\",\"GREETING\"]}";
    private const string LocalCompose = "{\"manifest_version\":2,\"name\":\"devvm\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"kms_enabled\":false,\"local_key_provider_enabled\":true}";

    private readonly string _root = Directory.CreateTempSubdirectory("pml-guestenv-").FullName;

    private string Shared => Path.Combine(_root, "shared");

    /// <summary>The platform an image would carry (build-dev's <c>&lt;image&gt;/tdx-simulator</c>).</summary>
    private string ImageSimulator => Path.Combine(_root, "image", "tdx-simulator");

    public DevGuestAgentTests() => Directory.CreateDirectory(Shared);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Plan_KmsApp_TakesEveryKmsUrlInOrder_AndTheEnvCopy()
    {
        var files = Share(KmsCompose, ["https://10.0.2.2:8443", "https://backup:8443"], env: [1, 2, 3]);
        var plan = DevGuestKeyPlan.For(files);
        Assert.Equal([new Uri("https://10.0.2.2:8443"), new Uri("https://backup:8443")], plan.KmsUrls);
        Assert.Equal(Path.Combine(files.Directory, ".encrypted-env"), plan.EncryptedEnvPath);
    }

    [Fact]
    public void Plan_KmsAppWithoutKmsUrls_StopsTheBoot()
    {
        var error = Assert.Throws<GuestBootException>(() => DevGuestKeyPlan.For(Share(KmsCompose, [], env: null)));
        Assert.Contains("no kms_urls", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_KmsUrlNotHttps_StopsTheBoot()
    {
        var error = Assert.Throws<GuestBootException>(() => DevGuestKeyPlan.For(Share(KmsCompose, ["http://10.0.2.2:8000"], env: null)));
        Assert.Contains("not an https URL", error.Message, StringComparison.Ordinal);
        var later = Assert.Throws<GuestBootException>(() => DevGuestKeyPlan.For(Share(KmsCompose, ["https://10.0.2.2:8443", "http://backup:8000"], env: null)));
        Assert.Contains("'http://backup:8000'", later.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_EncryptedEnvForAppWithoutKms_StopsTheBoot()
    {
        var error = Assert.Throws<GuestBootException>(() => DevGuestKeyPlan.For(Share(LocalCompose, ["https://10.0.2.2:8443"], env: [1, 2, 3])));
        Assert.Contains("only the KMS holds the key", error.Message, StringComparison.Ordinal);
        var local = DevGuestKeyPlan.For(Share(LocalCompose, [], env: null));
        Assert.Empty(local.KmsUrls);
        Assert.Null(local.EncryptedEnvPath);
    }

    [Theory]
    [InlineData("a", new[] { "a" })]
    [InlineData(" a , b ,,", new[] { "a", "b" })]
    [InlineData("", new string[0])]
    public void Tokens_AreTheCommaSeparatedValueOfPrivatemlApiKey(string value, string[] expected)
    {
        Assert.Equal(expected, DevGuestAgent.Tokens([new EnvVariable("OTHER", "x"), new EnvVariable(DevGuestAgent.ApiTokensVariable, value)]));
        Assert.Empty(DevGuestAgent.Tokens([new EnvVariable("OTHER", "x")]));
    }

    [Fact]
    public async Task Guest_WithTheImagesSimulator_GetsKmsKeys_AndOpensTheEnv()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var kms = await StartKmsAsync(ct);
        var files = await ShareWithEnvAsync(kms.Url, "PRIVATEML_API_KEY=tok-a,tok-b\nGREETING=hello\nNOT_ALLOWED=x\n", ct);

        var agentState = Path.Combine(_root, "agent");
        var fingerprint = DevGuestAgent.InstallSimulator(ImageSimulator, agentState);
        Assert.Equal(DevSimulator.RootFingerprint(ImageSimulator), fingerprint);
        await using var agent = await DevGuestAgent.StartAsync(Options(DevGuestKeyPlan.For(files), files, agentState), Quiet, ct);

        Assert.IsType<KmsKeyProvider>(agent.Host.Services.GetService(typeof(IKeyProvider)));
        Assert.Equal(["GREETING", "PRIVATEML_API_KEY"], agent.EnvNames);
        Assert.Equal(["tok-a", "tok-b"], agent.ApiTokens());
    }

    [Fact]
    public async Task Guest_WithAFreshSimulator_IsRefusedByTheKms_AndTheBootStops()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var kms = await StartKmsAsync(ct);
        var files = await ShareWithEnvAsync(kms.Url, "PRIVATEML_API_KEY=tok-a\n", ct);

        // No InstallSimulator: the agent makes its own platform, whose root the KMS does not trust.
        var error = await Assert.ThrowsAsync<GuestBootException>(() =>
            DevGuestAgent.StartAsync(Options(DevGuestKeyPlan.For(files), files, Path.Combine(_root, "agent")), Quiet, ct));
        Assert.Contains("no app keys from the KMS", error.Message, StringComparison.Ordinal);
        Assert.Contains(nameof(PrivateMl.Attestation.Verification.ErrorCode.KmsQuoteUntrusted), error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(files.Directory, EncryptedEnvSetup.DecryptedEnvFileName)));
    }

    [Fact]
    public async Task Guest_WithUnreachableKms_StopsTheBoot_WithTheReason()
    {
        var ct = TestContext.Current.CancellationToken;
        using var closed = new RefusingPort();
        var files = Share(KmsCompose, [closed.HttpsUrl.ToString()], env: null);

        var error = await Assert.ThrowsAsync<GuestBootException>(() =>
            DevGuestAgent.StartAsync(Options(DevGuestKeyPlan.For(files), files, Path.Combine(_root, "agent")), Quiet, ct));
        Assert.Contains($"no app keys from the KMS at https://127.0.0.1:{closed.Port}", error.Message, StringComparison.Ordinal);
        Assert.Contains("could not be reached", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Guest_PassesAnUnreachableFirstKms_AndOpensTheEnvWithTheNext()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var kms = await StartKmsAsync(ct);
        using var closed = new RefusingPort();
        var files = await ShareWithEnvAsync(kms.Url, "PRIVATEML_API_KEY=tok-a\n", ct, unreachableFirst: closed.HttpsUrl);

        var agentState = Path.Combine(_root, "agent");
        DevGuestAgent.InstallSimulator(ImageSimulator, agentState);
        await using var agent = await DevGuestAgent.StartAsync(Options(DevGuestKeyPlan.For(files), files, agentState), Quiet, ct);

        var provider = Assert.IsType<KmsKeyProvider>(agent.Host.Services.GetService(typeof(IKeyProvider)));
        Assert.Equal(new Uri(kms.Url), provider.CurrentUrl);
        Assert.Equal(["tok-a"], agent.ApiTokens());
    }

    [Fact]
    public async Task Guest_WithEveryKmsUnreachable_StopsTheBoot_NamingEachKms()
    {
        var ct = TestContext.Current.CancellationToken;
        using var first = new RefusingPort();
        using var second = new RefusingPort();
        var files = Share(KmsCompose, [first.HttpsUrl.ToString(), second.HttpsUrl.ToString()], env: null);

        var error = await Assert.ThrowsAsync<GuestBootException>(() =>
            DevGuestAgent.StartAsync(Options(DevGuestKeyPlan.For(files), files, Path.Combine(_root, "agent")), Quiet, ct));
        Assert.Contains($"no app keys from the KMS at {first.HttpsUrl}, {second.HttpsUrl}: no KMS gave app keys (2 tried, in order)", error.Message, StringComparison.Ordinal);
        Assert.Contains($"{first.HttpsUrl}: the KMS at https://127.0.0.1:{first.Port}/prpc/GetTempCaCert could not be reached", error.Message, StringComparison.Ordinal);
        Assert.Contains($"{second.HttpsUrl}: the KMS at https://127.0.0.1:{second.Port}/prpc/GetTempCaCert could not be reached", error.Message, StringComparison.Ordinal);
    }

    private static void Quiet(ILoggingBuilder logging) => logging.SetMinimumLevel(LogLevel.None);

    private AgentOptions Options(DevGuestKeyPlan plan, GuestSharedFiles files, string agentState) => new()
    {
        SocketPath = Path.Combine(_root, "dstack.sock"),
        TappdSocketPath = null,
        StateDirectory = agentState,
        AppComposePath = Path.Combine(files.Directory, GuestSharedFolder.AppComposeFile),
        KmsUrls = plan.KmsUrls,
        EncryptedEnvPath = plan.EncryptedEnvPath,
    };

    private GuestSharedFiles Share(string compose, string[] kmsUrls, byte[]? env)
    {
        File.WriteAllText(Path.Combine(Shared, "app-compose.json"), compose);
        File.WriteAllText(Path.Combine(Shared, ".sys-config.json"), "{\"kms_urls\":[" + string.Join(',', kmsUrls.Select(u => $"\"{u}\"")) + "]}");
        if (env is not null)
        {
            File.WriteAllBytes(Path.Combine(Shared, ".encrypted-env"), env);
        }
        else
        {
            File.Delete(Path.Combine(Shared, ".encrypted-env"));
        }

        return GuestSharedFolder.CopyAndRead(Shared, Path.Combine(_root, "copy"));
    }

    /// <summary>The host's side: the env encrypted to the KMS's env key for the compose's app id, as deploy --env-file does.</summary>
    private async Task<GuestSharedFiles> ShareWithEnvAsync(string kmsUrl, string envFile, CancellationToken ct, Uri? unreachableFirst = null)
    {
        var appId = SHA256.HashData(Encoding.UTF8.GetBytes(KmsCompose))[..20];
        AppEnvEncryptPublicKey key;
        using (var client = new KmsClient(new Uri(kmsUrl)))
        using (var answer = await client.CallAsync("GetAppEnvEncryptPubKey", w => w.WriteString("app_id", Convert.ToHexStringLower(appId)), ct))
        {
            key = AppEnvEncryptPublicKey.Parse(Encoding.UTF8.GetBytes(answer.RootElement.GetRawText()));
        }

        var plaintext = EnvVariables.Serialize(EnvFile.Parse(envFile));
        File.WriteAllBytes(Path.Combine(Shared, ".encrypted-env"), EncryptedEnv.Encrypt(plaintext, key.PublicKey, RandomNumberGenerator.Create()));
        File.WriteAllText(Path.Combine(Shared, "app-compose.json"), KmsCompose);
        var kmsUrls = unreachableFirst is null ? $"\"{kmsUrl}\"" : $"\"{unreachableFirst}\",\"{kmsUrl}\"";
        File.WriteAllText(Path.Combine(Shared, ".sys-config.json"), $"{{\"kms_urls\":[{kmsUrls}]}}");
        return GuestSharedFolder.CopyAndRead(Shared, Path.Combine(_root, "copy"));
    }

    /// <summary>A KMS as <c>privateml kms serve --simulate --simulator &lt;image&gt;/tdx-simulator</c> runs it, on loopback.</summary>
    private Task<RunningKms> StartKmsAsync(CancellationToken ct) => RunningKms.StartAsync(ImageSimulator, Path.Combine(_root, "kms"), ct);
}
