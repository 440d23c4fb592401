using PrivateMl.Attestation.Verification;
using PrivateMl.Client.Tests.Support;

namespace PrivateMl.Client.Tests;

/// <summary>The client against our own node (simulated agent + attesting gateway), as after <c>privateml up</c>.</summary>
public sealed class GatewayEndToEndTests
{
    [Fact]
    public async Task Allow_simulated_passes_every_check_against_our_gateway()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(result.Trusted, NodeVerifierTests.Describe(result));
        Assert.True(result.IsSimulated);
        Assert.Empty(result.Failures);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.SigningKeyBinding)!.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.EventLogRtmr3)!.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.PublishedCompose)!.Outcome);
    }

    [Fact]
    public async Task Strict_verification_of_our_gateway_fails_only_on_the_simulated_root()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options(allowSimulated: false)).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Equal("policy.simulated", Assert.Single(result.Failures).Name);
    }

    [Theory]
    [InlineData(true, "ecdsa")]
    [InlineData(false, "ecdsa")]
    [InlineData(true, "ed25519")]
    public async Task Chat_verifies_its_own_answer_end_to_end(bool stream, string algo)
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var attested = await new NodeVerifier(http, node.Options() with { SigningAlgo = algo }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        Assert.True(attested.Trusted, NodeVerifierTests.Describe(attested));
        var deltas = new List<string>();

        var answer = await new VerifiedChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(VerifiedChat.RequestBody("test-model", "hi", stream), attested.SigningAddress!, algo, deltas.Add, TestContext.Current.CancellationToken);

        Assert.True(answer.Verified, string.Join("\n", answer.Checks.Select(c => $"{c.Outcome} {c.Name}: {c.Detail}")));
        Assert.Equal(stream ? "tok0 tok1 tok2 tok3 " : "hello there", answer.Content);
        Assert.Equal(answer.Content, string.Concat(deltas));
        Assert.Contains(answer.Checks, c => c.Name == ReceiptVerifier.ResponseCheck && c.Outcome == CheckOutcome.Passed);
        Assert.Contains(answer.Checks, c => c.Name == ReceiptVerifier.AttestedKeyCheck && c.Outcome == CheckOutcome.Passed);
    }

    [Fact]
    public async Task A_tampered_stream_is_reported_as_tampered()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var attested = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        using var tampering = new HttpClient(new TamperingHandler());

        var answer = await new VerifiedChat(tampering, node.BaseAddress, GatewayNode.Token)
            .SendAsync(VerifiedChat.RequestBody("test-model", "hi", stream: true), attested.SigningAddress!, "ecdsa", null, TestContext.Current.CancellationToken);

        Assert.False(answer.Verified);
        var failure = Assert.Single(answer.Checks, c => c.Name == SignedResponseVerifier.ResponseHashCheck);
        Assert.Equal(ErrorCode.ResponseHashMismatch, failure.Code);
        Assert.StartsWith("TAMPERED", failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_saved_receipt_verifies_offline_and_a_modified_one_does_not()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var attested = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        var answer = await new VerifiedChat(http, node.BaseAddress, GatewayNode.Token)
            .SendAsync(VerifiedChat.RequestBody("test-model", "hi", stream: false), attested.SigningAddress!, "ecdsa", null, TestContext.Current.CancellationToken);
        var receipt = System.Text.Encoding.UTF8.GetBytes(answer.ReceiptJson!);

        var good = ReceiptVerifier.Verify(receipt, attested.SigningAddress);
        var modified = ReceiptVerifier.Verify(System.Text.Encoding.UTF8.GetBytes(answer.ReceiptJson!.Replace("test-model", "other-model", StringComparison.Ordinal)), attested.SigningAddress);

        Assert.DoesNotContain(good, c => c.Outcome == CheckOutcome.Failed);
        Assert.Equal(ErrorCode.ReceiptInvalid, Assert.Single(modified, c => c.Outcome == CheckOutcome.Failed).Code);
    }
}
