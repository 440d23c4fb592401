using System.Text;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.EndToEnd.Tests.Support;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.EndToEnd.Tests;

/// <summary>
/// Flow 1: KMS (SIMULATED TD, HTTPS on loopback) → guest agent with key provider kms → gateway with the agent's keys
/// → a client that attests the node and verifies every answer against the attested key.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class KmsToClientTests
{
    private static readonly string Compose = SimulatedDeployment.Compose("e2e-chat");

    [Fact]
    public async Task Client_trusts_the_node_and_sees_its_keys_come_from_this_kms()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, deployment.VerifierOptions(expectedCompose: Compose)).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(result.Trusted, Describe.Checks(result));
        Assert.True(result.IsSimulated);
        Assert.Empty(result.Failures);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.SigningKeyBinding)!.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.NonceBinding)!.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.EventLogRtmr3)!.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.ComposeHash)!.Outcome);
        var identity = result.AppIdentity!;
        Assert.Equal(SimulatedDeployment.AppIdOf(Compose), identity.AppId!.Value.ToArray());
        Assert.Equal("kms", identity.KeyProviderName);
        Assert.Equal(deployment.Kms.CaPublicKey, identity.KeyProviderId);
    }

    [Fact]
    public async Task A_strict_client_refuses_the_node_only_because_it_is_simulated()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, deployment.VerifierOptions() with { AllowSimulated = false }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Equal("policy.simulated", Assert.Single(result.Failures).Name);
    }

    [Fact]
    public async Task A_client_pinned_to_another_simulated_root_refuses_the_node()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        using var other = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions { Profile = SimulatedBoot.Profile() }, DateTimeOffset.UtcNow);
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, deployment.VerifierOptions() with { SimulatedRootCertificate = other.Pki.RootCertificate.RawData })
            .VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.False(result.Quote!.Accepted);
        Assert.True(result.Failures.Any(c => c.Code == ErrorCode.PckChainUntrusted), Describe.Checks(result));
    }

    [Fact]
    public async Task The_attested_signing_keys_are_the_ones_the_agent_derives_from_the_kms_app_key()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);

        var attested = await deployment.AttestAsync(node);
        var derived = await SimulatedDeployment.AgentDerivedSigningKeysAsync(node);

        Assert.Equal(derived.EcdsaAddress, attested.Ecdsa.SigningAddress, ignoreCase: true);
        Assert.Equal(derived.Ed25519Key, attested.Ed25519.SigningAddress, ignoreCase: true);
    }

    [Theory]
    [InlineData(true, "ecdsa")]
    [InlineData(false, "ecdsa")]
    [InlineData(true, "ed25519")]
    [InlineData(false, "ed25519")]
    public async Task A_chat_verifies_end_to_end_over_the_exact_bytes(bool stream, string algo)
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        using var http = new HttpClient();
        var ct = TestContext.Current.CancellationToken;
        var attested = await new NodeVerifier(http, deployment.VerifierOptions(signingAlgo: algo)).VerifyAsync(node.BaseAddress, ct);
        Assert.True(attested.Trusted, Describe.Checks(attested));
        var request = VerifiedChat.RequestBody(SimulatedDeployment.Model, "hello from the end-to-end test", stream);

        var answer = await new VerifiedChat(http, node.BaseAddress).SendAsync(request, attested.SigningAddress!, algo, null, ct);

        Assert.True(answer.Verified, Describe.Checks(answer));
        Assert.Equal(200, answer.Status);
        Assert.Equal(stream ? SimulatedDeployment.StreamedContent : SimulatedDeployment.Answer, answer.Content);
        foreach (var name in new[] { SignedResponseVerifier.SignatureCheck, SignedResponseVerifier.RequestHashCheck, SignedResponseVerifier.ResponseHashCheck, ReceiptVerifier.SignatureCheck, ReceiptVerifier.AttestedKeyCheck, ReceiptVerifier.RequestCheck, ReceiptVerifier.ResponseCheck })
        {
            Assert.Contains(answer.Checks, c => c.Name == name && c.Outcome == CheckOutcome.Passed);
        }

        // The model received exactly the bytes the client hashed; the receipt hashes are over exactly what crossed the wire.
        Assert.Equal(request, deployment.Upstream.Received[answer.ChatId!]);
        var receipt = ReceiptVerifier.Verify(Encoding.UTF8.GetBytes(answer.ReceiptJson!), attested.SigningAddress, request, answer.ResponseBytes);
        Assert.DoesNotContain(receipt, c => c.Outcome != CheckOutcome.Passed);
    }

    [Fact]
    public async Task Concurrent_chats_each_verify_against_their_own_bytes()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        using var http = new HttpClient();
        var ct = TestContext.Current.CancellationToken;
        var (ecdsa, ed25519) = await deployment.AttestAsync(node);
        var requests = Enumerable.Range(0, 8).Select(i => VerifiedChat.RequestBody(SimulatedDeployment.Model, $"prompt number {i}", stream: i % 2 == 0)).ToArray();

        var answers = await Task.WhenAll(requests.Select((request, i) => i % 4 < 2
            ? new VerifiedChat(http, node.BaseAddress).SendAsync(request, ecdsa.SigningAddress!, "ecdsa", null, ct)
            : new VerifiedChat(http, node.BaseAddress).SendAsync(request, ed25519.SigningAddress!, "ed25519", null, ct)));

        Assert.All(answers, a => Assert.True(a.Verified, Describe.Checks(a)));
        Assert.Equal(requests.Length, answers.Select(a => a.ChatId).Distinct().Count());
        for (var i = 0; i < requests.Length; i++)
        {
            Assert.Equal(requests[i], deployment.Upstream.Received[answers[i].ChatId!]);
            var receipt = Encoding.UTF8.GetBytes(answers[i].ReceiptJson!);
            var next = (i + 1) % requests.Length;
            Assert.Equal(ReceiptVerifier.RequestCheck, Assert.Single(ReceiptVerifier.Verify(receipt, ecdsa.SigningAddress, requests[next], answers[i].ResponseBytes), c => c.Outcome == CheckOutcome.Failed).Name);
        }
    }

    [Fact]
    public async Task A_receipt_does_not_verify_for_other_bytes_or_another_attested_key()
    {
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        await using var other = await deployment.BootAsync(SimulatedDeployment.Compose("e2e-other"));
        using var http = new HttpClient();
        var ct = TestContext.Current.CancellationToken;
        var attested = await new NodeVerifier(http, deployment.VerifierOptions()).VerifyAsync(node.BaseAddress, ct);
        var otherAttested = await new NodeVerifier(http, deployment.VerifierOptions()).VerifyAsync(other.BaseAddress, ct);
        var request = VerifiedChat.RequestBody(SimulatedDeployment.Model, "hi", stream: true);
        var answer = await new VerifiedChat(http, node.BaseAddress).SendAsync(request, attested.SigningAddress!, "ecdsa", null, ct);
        Assert.True(answer.Verified, Describe.Checks(answer));
        var receipt = Encoding.UTF8.GetBytes(answer.ReceiptJson!);
        var otherRequest = VerifiedChat.RequestBody(SimulatedDeployment.Model, "ho", stream: true);
        var otherResponse = answer.ResponseBytes.ToArray();
        otherResponse[^10] ^= 1;

        Assert.Equal(ErrorCode.SignerNotAttested, Assert.Single(ReceiptVerifier.Verify(receipt, otherAttested.SigningAddress), c => c.Outcome == CheckOutcome.Failed).Code);
        Assert.Equal(ReceiptVerifier.RequestCheck, Assert.Single(ReceiptVerifier.Verify(receipt, attested.SigningAddress, otherRequest, answer.ResponseBytes), c => c.Outcome == CheckOutcome.Failed).Name);
        Assert.Equal(ReceiptVerifier.ResponseCheck, Assert.Single(ReceiptVerifier.Verify(receipt, attested.SigningAddress, request, otherResponse), c => c.Outcome == CheckOutcome.Failed).Name);
    }
}
