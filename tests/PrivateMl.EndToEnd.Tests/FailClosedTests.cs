using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.EndToEnd.Tests.Support;
using PrivateMl.Kms.Policy;
using PrivateMl.Testing;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.EndToEnd.Tests;

/// <summary>
/// Flow 3: a guest that gets no app keys does not run. When the KMS refuses the app (its policy), does not trust the
/// guest's platform, or cannot be reached, the boot stops with <see cref="GuestBootException"/> carrying the KMS's
/// typed reason; no key was released (the encrypted env stays closed), the agent no longer answers on its socket, and
/// no gateway is started — there is no fallback to local keys.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FailClosedTests
{
    private static readonly string Allowed = SimulatedDeployment.Compose("e2e-allowed", "PRIVATEML_API_KEY");
    private static readonly string Refused = SimulatedDeployment.Compose("e2e-refused", "PRIVATEML_API_KEY");

    [Theory]
    [InlineData("app-id", ErrorCode.KmsAppNotAllowed)]
    [InlineData("compose-hash", ErrorCode.KmsComposeHashNotAllowed)]
    [InlineData("no-app", ErrorCode.KmsAppNotAllowed)]
    [InlineData("os-image", ErrorCode.KmsOsImageNotAllowed)]
    public async Task A_kms_whose_policy_refuses_the_app_stops_the_boot(string policyKind, ErrorCode expected)
    {
        var policy = policyKind switch
        {
            "app-id" => KmsPolicy.Default with { AppIds = [SimulatedDeployment.AppIdOf(Allowed)] },
            "compose-hash" => KmsPolicy.Default with { ComposeHashes = [SHA256.HashData(Encoding.UTF8.GetBytes(Allowed))] },
            "no-app" => KmsPolicy.Default with { AppIds = [] },
            "os-image" => KmsPolicy.Default with { OsImages = [new KmsOsImage(new byte[32], new byte[48], new byte[48], new byte[48], new byte[48]) { Name = "not this image" }] },
            _ => throw new ArgumentOutOfRangeException(nameof(policyKind)),
        };
        await using var deployment = await SimulatedDeployment.StartAsync(policy);
        var env = await deployment.EncryptEnvAsync(SimulatedDeployment.AppIdOf(Refused), "PRIVATEML_API_KEY=never-released\n");
        var guest = deployment.GuestDirectory();

        var error = await Assert.ThrowsAsync<GuestBootException>(() => deployment.BootAsync(Refused, encryptedEnv: env, guestDirectory: guest));

        var refusal = Assert.IsType<KmsClientException>(error.InnerException);
        Assert.Equal(expected.ToString(), refusal.RefusalCode);
        AssertNothingRuns(guest);
    }

    [Fact]
    public async Task The_same_kms_serves_the_app_its_policy_allows()
    {
        await using var deployment = await SimulatedDeployment.StartAsync(KmsPolicy.Default with { AppIds = [SimulatedDeployment.AppIdOf(Allowed)] });
        using var http = new HttpClient();

        await using var node = await deployment.BootAsync(Allowed);
        var result = await new NodeVerifier(http, deployment.VerifierOptions()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(result.Trusted, Describe.Checks(result));
        Assert.Equal(deployment.Kms.CaPublicKey, result.AppIdentity!.KeyProviderId);
    }

    [Fact]
    public async Task An_app_id_claimed_by_another_compose_gets_no_keys_until_the_kms_policy_admits_that_compose()
    {
        // .instance_info lets a KMS app keep its app id (and keys) across a compose upgrade; whoever can deploy could
        // claim any app id that way, so a KMS that pins compose hashes must refuse a compose it does not list.
        var appId = SimulatedDeployment.AppIdOf(Allowed);
        var upgrade = SimulatedDeployment.Compose("e2e-allowed-v2", "PRIVATEML_API_KEY");
        var policy = KmsPolicy.Default with { AppIds = [appId], ComposeHashes = [SHA256.HashData(Encoding.UTF8.GetBytes(Allowed))] };
        await using var deployment = await SimulatedDeployment.StartAsync(policy);
        AttestedNode original;
        await using (var node = await deployment.BootAsync(Allowed))
        {
            original = await deployment.AttestAsync(node);
        }

        var guest = deployment.GuestDirectory();
        var error = await Assert.ThrowsAsync<GuestBootException>(() => deployment.BootAsync(upgrade, appId: appId, guestDirectory: guest));
        Assert.Equal(nameof(ErrorCode.KmsComposeHashNotAllowed), Assert.IsType<KmsClientException>(error.InnerException).RefusalCode);
        AssertNothingRuns(guest);

        // The operator admits the new compose: the upgrade boots under the app id and keeps its keys.
        await deployment.RestartKmsAsync(policy with { ComposeHashes = [.. policy.ComposeHashes!, SHA256.HashData(Encoding.UTF8.GetBytes(upgrade))] });
        await using var upgraded = await deployment.BootAsync(upgrade, appId: appId);
        var attested = await deployment.AttestAsync(upgraded, expectedCompose: upgrade);
        Assert.Equal(appId, attested.AppId);
        Assert.Equal(original.Ecdsa.SigningAddress, attested.Ecdsa.SigningAddress);
        Assert.Equal(original.Ed25519.SigningAddress, attested.Ed25519.SigningAddress);
    }

    [Fact]
    public async Task A_kms_that_does_not_trust_the_guests_platform_stops_the_boot()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        var stranger = await deployment.StartOtherKmsAsync(simulatorDirectory: deployment.PathOf("other-platform"));
        var guest = deployment.GuestDirectory();

        var error = await Assert.ThrowsAsync<GuestBootException>(() => deployment.BootAsync(Allowed, kmsUrls: [stranger.Url], guestDirectory: guest));

        Assert.Equal(nameof(ErrorCode.KmsQuoteUntrusted), Assert.IsType<KmsClientException>(error.InnerException).RefusalCode);
        AssertNothingRuns(guest);
    }

    [Fact]
    public async Task An_unreachable_kms_stops_the_boot()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var closed = new RefusingPort();
        var env = await deployment.EncryptEnvAsync(SimulatedDeployment.AppIdOf(Allowed), "PRIVATEML_API_KEY=never-released\n");
        var guest = deployment.GuestDirectory();

        var error = await Assert.ThrowsAsync<GuestBootException>(() => deployment.BootAsync(Allowed, kmsUrls: [closed.HttpsUrl], encryptedEnv: env, guestDirectory: guest));

        var failure = Assert.IsType<KmsClientException>(error.InnerException);
        Assert.Null(failure.StatusCode);
        Assert.Null(failure.RefusalCode);
        Assert.Contains(closed.HttpsUrl.ToString(), error.Message, StringComparison.Ordinal);
        AssertNothingRuns(guest);
    }

    /// <summary>No env was opened and nothing answers on the agent's socket (the gateway is never built without the agent's keys).</summary>
    private static void AssertNothingRuns(string guestDirectory)
    {
        Assert.False(File.Exists(Path.Combine(guestDirectory, ".host-shared", EncryptedEnvSetup.DecryptedEnvFileName)));
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        Assert.Throws<SocketException>(() => socket.Connect(new UnixDomainSocketEndPoint(Path.Combine(guestDirectory, "dstack.sock"))));
    }
}
