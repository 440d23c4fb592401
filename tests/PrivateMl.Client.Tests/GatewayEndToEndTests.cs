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
    public async Task An_expected_key_provider_passes_and_any_other_fails()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var first = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        var measured = first.AppIdentity!.KeyProviderId!;
        Assert.False(string.IsNullOrEmpty(measured));

        var expected = await new NodeVerifier(http, node.Options() with { ExpectedKeyProviderIds = ["00ff", measured.ToUpperInvariant()] }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        var other = await new NodeVerifier(http, node.Options() with { ExpectedKeyProviderIds = [new string('a', measured.Length)] }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(expected.Trusted, NodeVerifierTests.Describe(expected));
        Assert.Equal(CheckOutcome.Passed, expected.Find(NodeVerifier.CheckNames.KeyProvider)!.Outcome);
        NodeVerifierTests.AssertOnlyFailure(other, NodeVerifier.CheckNames.KeyProvider, ErrorCode.KeyProviderNotExpected);
    }

    [Fact]
    public async Task An_expected_app_id_passes_and_any_other_fails()
    {
        await using var node = await GatewayNode.StartAsync();
        using var http = new HttpClient();
        var first = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        var measured = first.AppIdentity!.AppId!.Value.ToArray();
        var other = (byte[])measured.Clone();
        other[^1] ^= 1;

        var expected = await new NodeVerifier(http, node.Options() with { ExpectedAppId = measured }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        var wrong = await new NodeVerifier(http, node.Options() with { ExpectedAppId = other }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(expected.Trusted, NodeVerifierTests.Describe(expected));
        NodeVerifierTests.AssertOnlyFailure(wrong, NodeVerifier.CheckNames.AppId, ErrorCode.AppIdMismatch);
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

/// <summary><c>privateml chat</c> and <c>privateml receipt verify</c> against our simulated node.</summary>
public sealed class ChatCommandTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("privateml-chat-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = PrivateMl.Cli.Program.BuildRoot().Parse(args).Invoke(new System.CommandLine.InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Chat_streams_a_verified_answer_and_its_receipt_verifies_offline()
    {
        await using var node = await GatewayNode.StartAsync();
        var collateral = await WriteCollateralAsync(node);
        var receipt = Path.Combine(_temp, "receipt.json");

        var (exit, output, error) = Run("chat", node.BaseAddress.ToString(), "hi", "--model", "test-model", "--allow-simulated", "--offline", "--collateral", collateral, "--token", GatewayNode.Token, "--save-receipt", receipt);

        Assert.True(exit == 0, output + error);
        Assert.Contains("tok0 tok1 tok2 tok3", output, StringComparison.Ordinal);
        Assert.Contains("VERIFIED: this answer was signed by the attested key", output, StringComparison.Ordinal);
        var address = output.Split('\n').First(l => l.Contains("answers must be signed by", StringComparison.Ordinal)).Split(' ')[^1].Trim();

        var (valid, text, _) = Run("receipt", "verify", receipt, "--attested-address", address);
        Assert.True(valid == 0, text);
        Assert.Contains("✔ receipt.attested-key", text, StringComparison.Ordinal);

        await File.WriteAllTextAsync(receipt, (await File.ReadAllTextAsync(receipt, TestContext.Current.CancellationToken)).Replace("test-model", "evil-model", StringComparison.Ordinal), TestContext.Current.CancellationToken);
        var (invalid, bad, _) = Run("receipt", "verify", receipt, "--attested-address", address);
        Assert.Equal(1, invalid);
        Assert.Contains("✘ receipt.signature", bad, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_gpus_requires_evidence_from_exactly_that_many_gpus()
    {
        await using var node = await GatewayNode.StartAsync(simulatedGpus: 2);
        var collateral = await WriteCollateralAsync(node);
        string[] verify = ["verify", node.BaseAddress.ToString(), "--allow-simulated", "--offline", "--collateral", collateral, "--token", GatewayNode.Token];

        var (exit, output, error) = Run([.. verify, "--gpus", "2"]);
        Assert.True(exit == 0, output + error);
        Assert.Contains("✔ gpu.payload.gpu-count: 2 GPUs as expected", output, StringComparison.Ordinal);
        Assert.Contains("✔ gpu[1].evidence.signature", output, StringComparison.Ordinal);

        // A node that attests fewer GPUs than the client knows its model runs on is refused, naming the count.
        (exit, output, _) = Run([.. verify, "--gpus", "4"]);
        Assert.Equal(1, exit);
        Assert.Contains("✘ gpu.payload.gpu-count: 2 GPUs, 4 expected [GpuCountMismatch]", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chat_with_gpus_refuses_a_node_without_gpu_evidence_before_sending_the_prompt()
    {
        await using var node = await GatewayNode.StartAsync();
        var collateral = await WriteCollateralAsync(node);

        var (exit, output, _) = Run("chat", node.BaseAddress.ToString(), "hi", "--model", "test-model", "--allow-simulated", "--offline", "--collateral", collateral, "--token", GatewayNode.Token, "--gpus", "1");

        Assert.Equal(1, exit);
        Assert.Contains("✘ gpu: not checked: no GPU evidence", output, StringComparison.Ordinal);
        Assert.Contains("not sending the prompt", output, StringComparison.Ordinal);
        Assert.Empty(node.UpstreamReceived);
    }

    private async Task<string> WriteCollateralAsync(GatewayNode node)
    {
        var collateral = Path.Combine(_temp, "collateral");
        Directory.CreateDirectory(collateral);
        await File.WriteAllTextAsync(Path.Combine(collateral, "c.json"), PrivateMl.Collateral.CollateralJson.Serialize(node.Device.CreateCollateral()), TestContext.Current.CancellationToken);
        return collateral;
    }

    [Fact]
    public async Task Chat_refuses_to_send_the_prompt_to_an_untrusted_node()
    {
        await using var node = await GatewayNode.StartAsync();
        var collateral = await WriteCollateralAsync(node);

        var (exit, output, _) = Run("chat", node.BaseAddress.ToString(), "hi", "--offline", "--collateral", collateral, "--token", GatewayNode.Token);

        Assert.Equal(1, exit);
        Assert.Contains("✘ policy.simulated", output, StringComparison.Ordinal);
        Assert.Contains("not sending the prompt", output, StringComparison.Ordinal);
    }
}
