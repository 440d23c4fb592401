using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using PrivateMl.Agent.Env;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.EndToEnd.Tests.Support;
using PrivateMl.Kms.Keys;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.EndToEnd.Tests;

/// <summary>
/// Flow 4: the gateway's bearer tokens travel only inside the env the operator encrypted to the app's KMS key
/// (<c>PRIVATEML_API_KEY</c>, kept by <c>allowed_envs</c>); the guest opens it with the key the KMS released, and the
/// gateway then refuses callers without one of those tokens. An env encrypted for another app does not open, and
/// that guest does not boot.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class EnvTokenTests
{
    private static readonly string Compose = SimulatedDeployment.Compose("e2e-tokens", DevGuestAgent.ApiTokensVariable);

    [Fact]
    public async Task Tokens_from_the_encrypted_env_guard_the_gateway()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var deployment = await SimulatedDeployment.StartAsync();
        var env = await deployment.EncryptEnvAsync(SimulatedDeployment.AppIdOf(Compose), $"{DevGuestAgent.ApiTokensVariable}=tok-a, tok-b\nNOT_ALLOWED=x\n");
        await using var node = await deployment.BootAsync(Compose, encryptedEnv: env);
        using var http = new HttpClient();
        var request = VerifiedChat.RequestBody(SimulatedDeployment.Model, "who may ask?", stream: false);

        Assert.Equal([DevGuestAgent.ApiTokensVariable], node.Agent.EnvNames);
        Assert.True(File.Exists(Path.Combine(node.Files.Directory, EncryptedEnvSetup.DecryptedEnvFileName)));
        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(http, node, request, token: null));
        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(http, node, request, token: "tok-c"));
        Assert.Empty(deployment.Upstream.Received);
        var anonymous = await new NodeVerifier(http, deployment.VerifierOptions()).VerifyAsync(node.BaseAddress, ct);
        Assert.False(anonymous.Trusted);
        Assert.Equal(NodeVerifier.CheckNames.ReportFetch, anonymous.FirstFailure!.Name);

        var attested = await new NodeVerifier(http, deployment.VerifierOptions(token: "tok-b")).VerifyAsync(node.BaseAddress, ct);
        Assert.True(attested.Trusted, Describe.Checks(attested));
        var answer = await new VerifiedChat(http, node.BaseAddress, "tok-b").SendAsync(request, attested.SigningAddress!, "ecdsa", null, ct);
        Assert.True(answer.Verified, Describe.Checks(answer));
        Assert.Equal(request, Assert.Single(deployment.Upstream.Received).Value);

        // The signature and receipt of tok-b's answer are not handed to another token holder.
        Assert.Equal(HttpStatusCode.OK, await GetSignatureAsync(http, node, answer.ChatId!, "tok-b"));
        Assert.Equal(HttpStatusCode.NotFound, await GetSignatureAsync(http, node, answer.ChatId!, "tok-a"));
    }

    [Fact]
    public async Task An_env_encrypted_for_another_app_does_not_open_and_the_guest_does_not_boot()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        var stolen = await deployment.EncryptEnvAsync(SimulatedDeployment.AppIdOf(SimulatedDeployment.Compose("e2e-victim", DevGuestAgent.ApiTokensVariable)), $"{DevGuestAgent.ApiTokensVariable}=victim-token\n");
        var guest = deployment.GuestDirectory();

        var error = await Assert.ThrowsAsync<GuestBootException>(() => deployment.BootAsync(Compose, encryptedEnv: stolen, guestDirectory: guest));

        Assert.Equal(ErrorCode.EnvDecryptionFailed, Assert.IsType<AttestationException>(error.InnerException).Code);
        Assert.False(File.Exists(Path.Combine(guest, ".host-shared", EncryptedEnvSetup.DecryptedEnvFileName)));
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        Assert.Throws<SocketException>(() => socket.Connect(new UnixDomainSocketEndPoint(Path.Combine(guest, "dstack.sock"))));
    }

    [Fact]
    public async Task After_a_kms_key_rotation_an_env_sealed_to_the_earlier_epoch_opens_until_that_epoch_is_retired()
    {
        // kms rotate: the guest runs on the new epoch's keys, and the env sealed before it still opens with the earlier
        // epoch's env key. kms retire: it no longer does, and the guest does not come up without its env (a gateway
        // serving without its tokens) until the env is sealed again to the current epoch.
        await using var deployment = await SimulatedDeployment.StartAsync();
        var appId = SimulatedDeployment.AppIdOf(Compose);
        var node = await deployment.BootAsync(Compose, encryptedEnv: await deployment.EncryptEnvAsync(appId, $"{DevGuestAgent.ApiTokensVariable}=tok-a\n"));
        await node.DisposeAsync();
        var epochs = new KeyEpochStore(deployment.KmsState, TimeProvider.System);
        Assert.Equal(2u, epochs.Rotate());

        await using (var rotated = await deployment.RebootAsync(node))
        {
            Assert.Equal(["tok-a"], rotated.Agent.ApiTokens());
        }

        epochs.Retire(1);
        var error = await Assert.ThrowsAsync<GuestBootException>(() => deployment.RebootAsync(node));
        Assert.Equal(ErrorCode.EnvDecryptionFailed, Assert.IsType<AttestationException>(error.InnerException).Code);

        // update-env: sealed again to the current epoch's key, the same guest boots and its tokens apply.
        await File.WriteAllBytesAsync(Path.Combine(node.SharedDirectory, GuestSharedFolder.EncryptedEnvFile), await deployment.EncryptEnvAsync(appId, $"{DevGuestAgent.ApiTokensVariable}=tok-b\n"), TestContext.Current.CancellationToken);
        await using var again = await deployment.RebootAsync(node);
        using var http = new HttpClient();
        Assert.Equal(["tok-b"], again.Agent.ApiTokens());
        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(http, again, VerifiedChat.RequestBody(SimulatedDeployment.Model, "hi", stream: false), token: "tok-a"));
    }

    private static async Task<HttpStatusCode> PostAsync(HttpClient http, GuestNode node, byte[] body, string? token)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(node.BaseAddress, "v1/chat/completions")) { Content = new ByteArrayContent(body) };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (token is not null)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await http.SendAsync(message, TestContext.Current.CancellationToken);
        return response.StatusCode;
    }

    private static async Task<HttpStatusCode> GetSignatureAsync(HttpClient http, GuestNode node, string chatId, string token)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, new Uri(node.BaseAddress, $"v1/signature/{chatId}?signing_algo=ecdsa"));
        message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(message, TestContext.Current.CancellationToken);
        return response.StatusCode;
    }
}
