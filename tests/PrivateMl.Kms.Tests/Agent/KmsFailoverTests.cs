using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.Tests.Support;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Kms.Tests.Agent;

/// <summary>
/// Key provider <c>kms</c> with several <c>kms_urls</c>, against real loopback KMSs: each URL is tried in order until
/// one gives keys (dstack-util's <c>request_app_keys_from_kms</c>), and when none does the boot fails with every URL
/// and its reason. Closed ports are held bound but not listening, so they refuse at once and cannot be taken.
/// </summary>
public sealed class KmsFailoverTests
{
    [Fact]
    public async Task Agent_PassesAClosedPort_AndBootsWithTheNextKmsKeys_MeasuringThatKms()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var closed = new RefusingPort();
        await using var agent = BuildAgent(bed, [closed.HttpsUrl, bed.Url], out var device);
        using (device)
        {
            await agent.StartAsync(TestContext.Current.CancellationToken);
            AssertKeysFrom(bed, agent);
            var passed = Assert.Single(((KmsKeyProvider)agent.Services.GetRequiredService<IKeyProvider>()).PassedOver);
            Assert.Equal(closed.HttpsUrl, passed.Url);
            Assert.Contains("could not be reached", passed.Error.Message, StringComparison.Ordinal);
            await agent.StopAsync(TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task EveryKmsDown_FailsClosed_NamingEachUrlInOrder_WithItsReason()
    {
        using var first = new RefusingPort();
        using var second = new RefusingPort();
        using var provider = new KmsKeyProvider([first.HttpsUrl, second.HttpsUrl], NoQuotes, "{}", TimeProvider.System, RandomNumberGenerator.Create());

        var e = await Assert.ThrowsAsync<KmsClientException>(() => provider.GetAppKeysAsync(new AppKeyRequest(new byte[20], new byte[20]), TestContext.Current.CancellationToken).AsTask());

        Assert.Equal([first.HttpsUrl, second.HttpsUrl], e.Attempts.Select(a => a.Url));
        Assert.All(e.Attempts, a => Assert.Contains("could not be reached", a.Error.Message, StringComparison.Ordinal));
        Assert.Contains($"{first.HttpsUrl}: the KMS at https://127.0.0.1:{first.Port}/prpc/GetTempCaCert could not be reached", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{second.HttpsUrl}: the KMS at https://127.0.0.1:{second.Port}/prpc/GetTempCaCert could not be reached", e.Message, StringComparison.Ordinal);
        Assert.Null(e.RefusalCode);
        Assert.Same(e.Attempts[0].Error, e.InnerException);
        Assert.Throws<InvalidOperationException>(() => provider.KeyProviderInfo);
    }

    [Fact]
    public async Task AnHttpError_MovesOnToTheNextKms()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        var wrongPath = new Uri(bed.Url, "/not-a-kms");
        using var provider = new KmsKeyProvider([wrongPath, bed.Url], cvm.Quotes, "{}", bed.Clock, RandomNumberGenerator.Create());

        using var keys = await provider.GetAppKeysAsync(new AppKeyRequest(cvm.AppId, cvm.InstanceId), TestContext.Current.CancellationToken);

        Assert.Equal(bed.Url, provider.CurrentUrl);
        using var roots = KmsRootKeys.Open(bed.StateDirectory);
        using var expected = roots.DeriveAppKeys(cvm.AppId, cvm.InstanceId, 1);
        Assert.Equal(expected.DiskCryptKey, keys.DiskCryptKey.ToArray());

        // The same wrong path alone: the KMS answered, with an HTTP error.
        using var alone = new KmsKeyProvider(wrongPath, cvm.Quotes, "{}", bed.Clock, RandomNumberGenerator.Create());
        var e = await Assert.ThrowsAsync<KmsClientException>(() => alone.InitializeAsync(TestContext.Current.CancellationToken).AsTask());
        Assert.NotNull(e.StatusCode);
        Assert.NotEqual(200, e.StatusCode);
    }

    [Fact]
    public async Task AnEarlierEpochsKeys_AreFetchedOnRequest_WithoutChangingTheEpochTheAppRunsOn()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        var request = new AppKeyRequest(cvm.AppId, cvm.InstanceId);
        Assert.Equal(2u, new KeyEpochStore(bed.StateDirectory, TimeProvider.System).Rotate());
        using var provider = new KmsKeyProvider(bed.Url, cvm.Quotes, "{}", bed.Clock, RandomNumberGenerator.Create());

        using var current = await provider.GetAppKeysAsync(request, TestContext.Current.CancellationToken);
        using var earlier = await provider.GetAppKeysForEpochAsync(request, 1, TestContext.Current.CancellationToken);

        Assert.Equal(2u, provider.Epoch);
        using var roots = KmsRootKeys.Open(bed.StateDirectory);
        using var epoch1 = roots.DeriveAppKeys(cvm.AppId, cvm.InstanceId, 1);
        using var epoch2 = roots.DeriveAppKeys(cvm.AppId, cvm.InstanceId, 2);
        Assert.Equal(epoch1.DiskCryptKey, earlier.DiskCryptKey.ToArray());
        Assert.Equal(epoch2.DiskCryptKey, current.DiskCryptKey.ToArray());

        new KeyEpochStore(bed.StateDirectory, TimeProvider.System).Retire(1);
        var refused = await Assert.ThrowsAsync<KmsClientException>(() => provider.GetAppKeysForEpochAsync(request, 1, TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(nameof(ErrorCode.KmsEpochRetired), refused.RefusalCode);
        Assert.Equal(2u, provider.Epoch);
    }

    [Fact]
    public async Task APolicyRefusal_MovesOnToAReplica_WithTheSameRoot()
    {
        await using var refusing = await KmsTestbed.StartAsync(new KmsPolicy { AppIds = [] });
        CopyDirectory(refusing.StateDirectory, Path.Combine(refusing.Directory, "replica"));
        await using var replica = await KmsTestbed.StartAsync(shareWith: refusing, stateName: "replica");
        Assert.Equal(refusing.RootCa.RawData, replica.RootCa.RawData);

        await using var agent = BuildAgent(refusing, [refusing.Url, replica.Url], out var device);
        using (device)
        {
            await agent.StartAsync(TestContext.Current.CancellationToken);
            AssertKeysFrom(replica, agent);
            var passed = Assert.Single(((KmsKeyProvider)agent.Services.GetRequiredService<IKeyProvider>()).PassedOver);
            Assert.Equal((refusing.Url, nameof(ErrorCode.KmsAppNotAllowed)), (passed.Url, passed.Error.RefusalCode));
            await agent.StopAsync(TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task APolicyRefusal_ThenAKmsWithAnotherRoot_FailsClosed_ForTheMeasuredKeyProviderStands()
    {
        await using var refusing = await KmsTestbed.StartAsync(new KmsPolicy { AppIds = [] });
        await using var other = await KmsTestbed.StartAsync(shareWith: refusing, stateName: "other");
        Assert.NotEqual(refusing.RootCa.RawData, other.RootCa.RawData);

        await using var agent = BuildAgent(refusing, [refusing.Url, other.Url], out var device);
        using (device)
        {
            var e = await Assert.ThrowsAsync<KmsClientException>(() => agent.StartAsync(TestContext.Current.CancellationToken));

            Assert.Equal([refusing.Url, other.Url], e.Attempts.Select(a => a.Url));
            Assert.Equal(nameof(ErrorCode.KmsAppNotAllowed), e.Attempts[0].Error.RefusalCode);
            Assert.Contains("not the KMS measured as this CVM's key provider", e.Attempts[1].Error.Message, StringComparison.Ordinal);
            Assert.Equal(nameof(ErrorCode.KmsAppNotAllowed), e.RefusalCode);
            Assert.Contains($"{refusing.Url}: KMS GetAppKey failed", e.Message, StringComparison.Ordinal);
            Assert.Contains($"[{nameof(ErrorCode.KmsAppNotAllowed)}]", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task APinnedRoot_PassesAKmsWithAnotherRoot()
    {
        await using var pinned = await KmsTestbed.StartAsync();
        await using var other = await KmsTestbed.StartAsync(shareWith: pinned, stateName: "other");
        using var cvm = await pinned.BootCvmAsync();
        var pin = Convert.ToHexStringLower(pinned.RootCa.PublicKey.ExportSubjectPublicKeyInfo());
        using var provider = new KmsKeyProvider([other.Url, pinned.Url], cvm.Quotes, "{}", pinned.Clock, RandomNumberGenerator.Create(), expectedRootSpkiHex: pin);

        await provider.InitializeAsync(TestContext.Current.CancellationToken);

        Assert.Equal(pinned.Url, provider.CurrentUrl);
        Assert.Equal($"{{\"name\":\"kms\",\"id\":\"{pin}\"}}", provider.KeyProviderInfo);
    }

    /// <summary>The agent measured <paramref name="kms"/> as its key provider, uses its URL, and holds the keys it derives for the app.</summary>
    private static void AssertKeysFrom(KmsTestbed kms, WebApplication agent)
    {
        var provider = Assert.IsType<KmsKeyProvider>(agent.Services.GetRequiredService<IKeyProvider>());
        Assert.Equal(kms.Url, provider.CurrentUrl);
        var runtime = agent.Services.GetRequiredService<AgentRuntime>();
        var identity = DstackAppIdentity.FromEventLog(runtime.EventLog.GetEvents());
        using var roots = KmsRootKeys.Open(kms.StateDirectory);
        Assert.Equal(roots.KeyProviderInfo, identity.KeyProviderInfo);
        using var expected = roots.DeriveAppKeys(identity.AppId!.Value.Span, identity.InstanceId!.Value.Span, 1);
        Assert.Equal(expected.EnvCryptKey, runtime.AppKeys.EnvCryptKey.ToArray());
        Assert.Equal(expected.K256Signature, runtime.AppKeys.K256Signature.ToArray());
    }

    private static readonly RaTlsQuoteSource NoQuotes = (_, _) => throw new InvalidOperationException("no quote is needed before a KMS answers");

    private static WebApplication BuildAgent(KmsTestbed bed, IReadOnlyList<Uri> kmsUrls, out SimulatedTdxDevice device) =>
        GuestAgentHost.BuildSimulated(new AgentOptions
        {
            SocketPath = null,
            TappdSocketPath = null,
            ListenUrl = new Uri($"http://127.0.0.1:{FreePort.OnLoopback()}"),
            StateDirectory = bed.Directory,
            KmsUrls = kmsUrls,
        }, out device, bed.Clock, configureLogging: l => l.SetMinimumLevel(LogLevel.Critical));

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
