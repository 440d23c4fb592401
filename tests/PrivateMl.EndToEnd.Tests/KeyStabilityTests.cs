using System.Text;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.EndToEnd.Tests.Support;
using PrivateMl.Kms.Keys;
using PrivateMl.Testing;

namespace PrivateMl.EndToEnd.Tests;

/// <summary>
/// Flow 2: the signing keys belong to the app at its KMS, not to a process or a machine. A restarted guest, a new
/// instance of the same app, a restarted KMS and an upgraded compose that keeps its app id all sign with the same
/// attested keys, so answers signed before still verify against the new node's attestation; another app, or the same
/// app at another KMS, gets other keys.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class KeyStabilityTests
{
    private static readonly string Compose = SimulatedDeployment.Compose("e2e-stable");

    [Fact]
    public async Task A_restarted_guest_attests_the_same_keys_and_answers_signed_before_still_verify()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        var node = await deployment.BootAsync(Compose);
        SavedAnswer saved;
        AttestedNode before;
        await using (node)
        {
            before = await deployment.AttestAsync(node);
            saved = await ChatAndSaveAsync(http, node, before);
        }

        await using var again = await deployment.RebootAsync(node);
        var after = await deployment.AttestAsync(again);

        AssertSameKeys(before, after);
        Assert.Equal(before.InstanceId, after.InstanceId);
        AssertStillVerifies(saved, after);

        // The restarted gateway does not hold the earlier signature (memory store): the saved copy is what counts.
        using var gone = await http.GetAsync(new Uri(again.BaseAddress, $"v1/signature/{saved.ChatId}?signing_algo=ecdsa"), ct);
        Assert.False(gone.IsSuccessStatusCode);
    }

    [Fact]
    public async Task A_new_instance_of_the_same_app_attests_the_same_keys()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        await using var first = await deployment.BootAsync(Compose);
        await using var second = await deployment.BootAsync(Compose);
        var one = await deployment.AttestAsync(first);
        var saved = await ChatAndSaveAsync(http, first, one);

        var two = await deployment.AttestAsync(second);

        Assert.NotEqual(one.InstanceId, two.InstanceId);
        AssertSameKeys(one, two);
        AssertStillVerifies(saved, two);
    }

    [Fact]
    public async Task A_guest_that_reaches_its_kms_after_an_unreachable_one_attests_the_same_keys()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var closed = new RefusingPort();
        await using var direct = await deployment.BootAsync(Compose);
        await using var failover = await deployment.BootAsync(Compose, kmsUrls: [closed.HttpsUrl, deployment.Kms.Url]);

        var one = await deployment.AttestAsync(direct);
        var two = await deployment.AttestAsync(failover);

        AssertSameKeys(one, two);
        Assert.Equal(deployment.Kms.CaPublicKey, two.Ecdsa.AppIdentity!.KeyProviderId);
    }

    [Fact]
    public async Task Keys_survive_a_kms_restart_from_its_state()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        AttestedNode before;
        SavedAnswer saved;
        await using (var node = await deployment.BootAsync(Compose))
        {
            before = await deployment.AttestAsync(node);
            saved = await ChatAndSaveAsync(http, node, before);
        }

        var root = deployment.Kms.CaPublicKey;
        await deployment.RestartKmsAsync();
        await using var again = await deployment.BootAsync(Compose);
        var after = await deployment.AttestAsync(again);

        Assert.Equal(root, deployment.Kms.CaPublicKey);
        Assert.Equal(root, after.Ecdsa.AppIdentity!.KeyProviderId);
        AssertSameKeys(before, after);
        AssertStillVerifies(saved, after);
    }

    [Fact]
    public async Task Another_app_gets_other_keys_and_its_attestation_does_not_vouch_for_earlier_answers()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        await using var node = await deployment.BootAsync(Compose);
        await using var other = await deployment.BootAsync(SimulatedDeployment.Compose("e2e-stable-other"));
        var mine = await deployment.AttestAsync(node);
        var saved = await ChatAndSaveAsync(http, node, mine);

        var theirs = await deployment.AttestAsync(other);

        Assert.NotEqual(mine.AppId, theirs.AppId);
        AssertOtherKeys(mine, theirs);
        AssertRejectedBy(saved, theirs);
    }

    [Fact]
    public async Task The_same_app_at_another_kms_gets_other_keys()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        var otherKms = await deployment.StartOtherKmsAsync();
        await using var node = await deployment.BootAsync(Compose);
        await using var elsewhere = await deployment.BootAsync(Compose, kmsUrls: [otherKms.Url]);

        var here = await deployment.AttestAsync(node);
        var there = await deployment.AttestAsync(elsewhere);

        Assert.NotEqual(deployment.Kms.CaPublicKey, otherKms.CaPublicKey);
        Assert.Equal(otherKms.CaPublicKey, there.Ecdsa.AppIdentity!.KeyProviderId);
        Assert.Equal(here.AppId, there.AppId);
        AssertOtherKeys(here, there);

        // A client that requires keys from the first KMS (verify --key-provider) accepts that node and refuses the other.
        using var http = new HttpClient();
        var pinned = deployment.VerifierOptions() with { ExpectedKeyProviderIds = [deployment.Kms.CaPublicKey] };
        Assert.True((await new NodeVerifier(http, pinned).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken)).Trusted);
        var refused = await new NodeVerifier(http, pinned).VerifyAsync(elsewhere.BaseAddress, TestContext.Current.CancellationToken);
        Assert.Equal(ErrorCode.KeyProviderNotExpected, Assert.Single(refused.Failures).Code);
    }

    [Fact]
    public async Task An_upgraded_compose_deployed_under_the_same_app_id_keeps_the_keys_and_the_client_sees_the_new_compose()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        var upgraded = SimulatedDeployment.Compose("e2e-stable-v2");
        await using var node = await deployment.BootAsync(Compose);
        await using var next = await deployment.BootAsync(upgraded, appId: SimulatedDeployment.AppIdOf(Compose));
        var v1 = await deployment.AttestAsync(node);

        var v2 = await deployment.AttestAsync(next, expectedCompose: upgraded);
        var pinnedToOld = await new NodeVerifier(http, deployment.VerifierOptions(expectedCompose: Compose)).VerifyAsync(next.BaseAddress, ct);

        Assert.Equal(SimulatedDeployment.AppIdOf(Compose), v2.AppId);
        AssertSameKeys(v1, v2);
        Assert.False(pinnedToOld.Trusted);
        Assert.Equal(NodeVerifier.CheckNames.ComposeHash, Assert.Single(pinnedToOld.Failures).Name);

        // A client that pins the app id and its KMS instead (verify --app-id --key-provider) follows the upgrade.
        var pinnedToApp = deployment.VerifierOptions() with
        {
            ExpectedAppId = SimulatedDeployment.AppIdOf(Compose),
            ExpectedKeyProviderIds = [deployment.Kms.CaPublicKey],
        };
        Assert.True((await new NodeVerifier(http, pinnedToApp).VerifyAsync(next.BaseAddress, ct)).Trusted);
    }

    [Fact]
    public async Task After_a_kms_key_rotation_a_rebooted_guest_signs_with_new_keys_and_earlier_answers_verify_only_against_the_earlier_attestation()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        var node = await deployment.BootAsync(Compose);
        AttestedNode before;
        SavedAnswer saved;
        await using (node)
        {
            before = await deployment.AttestAsync(node);
            saved = await ChatAndSaveAsync(http, node, before);
        }

        // privateml kms rotate: the running KMS picks the new epoch up from its state directory.
        Assert.Equal(2u, new KeyEpochStore(deployment.KmsState, TimeProvider.System).Rotate());
        await using var again = await deployment.RebootAsync(node);
        var after = await deployment.AttestAsync(again);

        Assert.Equal(before.AppId, after.AppId);
        AssertOtherKeys(before, after);
        AssertRejectedBy(saved, after);
        AssertStillVerifies(saved, before);
    }

    private sealed record SavedAnswer(string ChatId, byte[] Request, byte[] Response, byte[] Receipt, byte[] EcdsaSignature, byte[] Ed25519Signature);

    /// <summary>A verified streamed chat, and everything a client keeps to prove it later: the exact bytes, the receipt, both signatures.</summary>
    private static async Task<SavedAnswer> ChatAndSaveAsync(HttpClient http, GuestNode node, AttestedNode attested)
    {
        var ct = TestContext.Current.CancellationToken;
        var request = VerifiedChat.RequestBody(SimulatedDeployment.Model, "remember this answer", stream: true);
        var answer = await new VerifiedChat(http, node.BaseAddress).SendAsync(request, attested.Ecdsa.SigningAddress!, "ecdsa", null, ct);
        Assert.True(answer.Verified, Describe.Checks(answer));
        var ecdsa = await http.GetByteArrayAsync(new Uri(node.BaseAddress, $"v1/signature/{answer.ChatId}?signing_algo=ecdsa"), ct);
        var ed25519 = await http.GetByteArrayAsync(new Uri(node.BaseAddress, $"v1/signature/{answer.ChatId}?signing_algo=ed25519"), ct);
        return new SavedAnswer(answer.ChatId!, request, answer.ResponseBytes, Encoding.UTF8.GetBytes(answer.ReceiptJson!), ecdsa, ed25519);
    }

    private static void AssertSameKeys(AttestedNode expected, AttestedNode actual)
    {
        Assert.Equal(expected.Ecdsa.SigningAddress, actual.Ecdsa.SigningAddress);
        Assert.Equal(expected.Ed25519.SigningAddress, actual.Ed25519.SigningAddress);
    }

    private static void AssertOtherKeys(AttestedNode one, AttestedNode other)
    {
        Assert.NotEqual(one.Ecdsa.SigningAddress, other.Ecdsa.SigningAddress);
        Assert.NotEqual(one.Ed25519.SigningAddress, other.Ed25519.SigningAddress);
    }

    private static void AssertStillVerifies(SavedAnswer saved, AttestedNode now)
    {
        Assert.All(ReceiptVerifier.Verify(saved.Receipt, now.Ecdsa.SigningAddress, saved.Request, saved.Response), c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
        Assert.All(ReceiptVerifier.Verify(saved.Receipt, now.Ed25519.SigningAddress, saved.Request, saved.Response), c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
        Assert.All(SignedResponseVerifier.Verify(saved.EcdsaSignature, saved.Request, saved.Response, now.Ecdsa.SigningAddress!, "ecdsa"), c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
        Assert.All(SignedResponseVerifier.Verify(saved.Ed25519Signature, saved.Request, saved.Response, now.Ed25519.SigningAddress!, "ed25519"), c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
    }

    private static void AssertRejectedBy(SavedAnswer saved, AttestedNode other)
    {
        Assert.Equal(ErrorCode.SignerNotAttested, Assert.Single(ReceiptVerifier.Verify(saved.Receipt, other.Ecdsa.SigningAddress, saved.Request, saved.Response), c => c.Outcome == CheckOutcome.Failed).Code);
        Assert.Contains(SignedResponseVerifier.Verify(saved.EcdsaSignature, saved.Request, saved.Response, other.Ecdsa.SigningAddress!, "ecdsa"), c => c.Outcome == CheckOutcome.Failed);
        Assert.Contains(SignedResponseVerifier.Verify(saved.Ed25519Signature, saved.Request, saved.Response, other.Ed25519.SigningAddress!, "ed25519"), c => c.Outcome == CheckOutcome.Failed);
    }
}
