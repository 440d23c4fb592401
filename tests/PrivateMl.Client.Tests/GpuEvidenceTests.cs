using PrivateMl.Attestation.Verification;
using PrivateMl.Client.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Client.Tests;

/// <summary>GPU evidence in a seed report is verified locally against the same nonce as the quote.</summary>
public sealed class GpuEvidenceTests
{
    private const string PayloadFile = "nvidia/near/nanogpt-20260610.nvidia_payload.json";
    private const string PayloadNonce = "9a796732359e9324a45576a730e5a9c47bff518b8ee8bcb882d00b5b1ff6f39a";
    private static readonly DateTimeOffset CapturedAt = new(2026, 6, 10, 2, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Real_GPU_evidence_over_this_runs_nonce_is_verified_locally()
    {
        var payload = SharedTestData.ReadText(PayloadFile).TrimEnd('\n');
        await using var node = new SeedNode(new SeedDefects { NvidiaPayload = payload }, CapturedAt);
        await node.StartAsync();
        using var http = new HttpClient();
        var options = node.Options() with { NonceSource = () => Convert.FromHexString(PayloadNonce) };

        var result = await new NodeVerifier(http, options).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.Equal(CheckOutcome.Passed, result.Find("gpu[0].evidence.nonce")?.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find("gpu[0].evidence.signature")?.Outcome);
        Assert.Equal(CheckOutcome.Passed, result.Find("gpu[0].cert-chain")?.Outcome);
        Assert.NotNull(result.Gpu);
        Assert.Equal("570.172.08", result.Gpu.Gpus[0].DriverVersion);
        Assert.DoesNotContain(result.Failures, c => c.Name.StartsWith("gpu", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GPU_evidence_over_another_nonce_is_caught()
    {
        var payload = SharedTestData.ReadText(PayloadFile).TrimEnd('\n');
        await using var node = new SeedNode(new SeedDefects { NvidiaPayload = payload }, CapturedAt);
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Contains(result.Failures, c => c.Name.StartsWith("gpu", StringComparison.Ordinal) && c.Code == ErrorCode.GpuNonceMismatch);
        Assert.Equal(CheckOutcome.Passed, result.Find(NodeVerifier.CheckNames.NonceBinding)!.Outcome);
    }
}
