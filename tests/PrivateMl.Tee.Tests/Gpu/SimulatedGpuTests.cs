using System.Security.Cryptography;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Gpu;
using PrivateMl.Tee.Simulator.Gpu;
using Names = PrivateMl.Attestation.Nvidia.GpuEvidenceVerifier.CheckNames;

namespace PrivateMl.Tee.Tests.Gpu;

public sealed class SimulatedGpuTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 0, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(8)]
    public async Task Every_simulated_gpu_verifies_over_one_nonce(int count)
    {
        using var source = new SimulatedGpuEvidenceSource(count);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await source.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        Assert.Equal(count, payload.Items.Count);
        Assert.Equal(Convert.ToHexStringLower(nonce), payload.Nonce);

        // Through the wire format and back, as a client receives it.
        var received = GpuEvidencePayload.Parse(payload.ToJson());
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true, RequireRims = true, ExpectedGpuCount = count });
        var result = verifier.Verify(received, nonce, Now, source.CreateRims());
        Assert.True(result.Accepted, result.FirstFailure?.Detail);
        Assert.True(result.IsSimulated);
        Assert.Equal(count, result.Gpus.Count);
        Assert.All(result.Gpus, g =>
        {
            Assert.True(g.IsSimulated);
            Assert.Equal(CheckOutcome.Passed, g.Find(Names.Fwid)!.Outcome);
            Assert.Equal(CheckOutcome.Passed, g.Find(Names.Measurements)!.Outcome);
            Assert.Equal(SimulatedGpuFirmware.DriverIndices.Count + SimulatedGpuFirmware.VbiosIndices.Count - 1, g.Measurements!.MatchedCount); // index 35 skipped (NVDEC0 off)
            Assert.Contains("SIMULATED", g.Find(Names.CertificateChain)!.Detail, StringComparison.Ordinal);
        });
        Assert.Equal(count, result.Gpus.Select(g => g.Ueid).Distinct().Count());
        Assert.Equal(Enumerable.Range(0, count), result.Gpus.Select(g => g.Index));
    }

    [Fact]
    public async Task Simulated_evidence_is_refused_unless_explicitly_trusted()
    {
        using var source = new SimulatedGpuEvidenceSource(2);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await source.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        var result = new GpuEvidenceVerifier().Verify(payload, nonce, Now, source.CreateRims());
        Assert.False(result.Accepted);
        Assert.All(result.Gpus, g => Assert.Equal(ErrorCode.SimulatedEvidenceNotTrusted, g.Find(Names.CertificateChain)!.Code));
        Assert.All(result.Gpus, g => Assert.Equal(ErrorCode.SimulatedEvidenceNotTrusted, g.Find(Names.DriverRim)!.Code));
    }

    [Fact]
    public async Task One_tampered_gpu_fails_alone()
    {
        using var source = new SimulatedGpuEvidenceSource(3);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await source.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        var evidence = (byte[])payload.Items[1].Evidence.Clone();
        evidence[100] ^= 1;
        var items = payload.Items.ToList();
        items[1] = items[1] with { Evidence = evidence };
        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true }).Verify(payload with { Items = items }, nonce, Now);
        Assert.False(result.Accepted);
        Assert.True(result.Gpus[0].Accepted);
        Assert.Equal(ErrorCode.GpuReportSignatureInvalid, result.Gpus[1].Error);
        Assert.True(result.Gpus[2].Accepted);
    }

    [Fact]
    public async Task Evidence_for_another_nonce_is_rejected()
    {
        using var source = new SimulatedGpuEvidenceSource(2);
        var payload = await source.GetEvidenceAsync(RandomNumberGenerator.GetBytes(32), TestContext.Current.CancellationToken);
        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true }).Verify(payload, RandomNumberGenerator.GetBytes(32), Now);
        Assert.False(result.Accepted);
        Assert.All(result.Gpus, g => Assert.Equal(ErrorCode.GpuNonceMismatch, g.Error));
    }

    [Fact]
    public async Task Gpu_count_expectation_is_enforced()
    {
        using var source = new SimulatedGpuEvidenceSource(2);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await source.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true, ExpectedGpuCount = 8 }).Verify(payload, nonce, Now);
        Assert.Equal(ErrorCode.GpuCountMismatch, result.Error);
    }

    [Fact]
    public async Task Rims_for_other_firmware_do_not_match()
    {
        using var source = new SimulatedGpuEvidenceSource(1);
        using var other = new SimulatedGpuEvidenceSource(1, SimulatedGpuFirmware.Default with { DriverVersion = "580.159.04" == SimulatedGpuFirmware.Default.DriverVersion ? "580.159.05" : "580.159.04" });
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await source.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true, RequireRims = true });
        var result = verifier.Verify(payload, nonce, Now, other.CreateRims());
        Assert.Equal(ErrorCode.RimNotFound, result.Gpus[0].Find(Names.DriverRim)!.Code);
    }

    [Fact]
    public async Task Payloads_over_one_nonce_merge_and_verify_per_gpu()
    {
        using var a = new SimulatedGpuEvidenceSource(3);
        using var b = new SimulatedGpuEvidenceSource(2);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var merged = GpuEvidencePayload.Merge([await a.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken), await b.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken)]);
        Assert.Equal(5, merged.Items.Count);
        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true, ExpectedGpuCount = 5 }).Verify(GpuEvidencePayload.Parse(merged.ToJson()), nonce, Now);
        Assert.True(result.Accepted, result.FirstFailure?.Detail);
        Assert.Equal([0, 1, 2, 3, 4], result.Gpus.Select(g => g.Index));

        var other = await b.GetEvidenceAsync(RandomNumberGenerator.GetBytes(32), TestContext.Current.CancellationToken);
        var ex = Assert.Throws<AttestationException>(() => GpuEvidencePayload.Merge([merged, other]));
        Assert.Equal(ErrorCode.GpuNonceMismatch, ex.Code);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public async Task Nonce_must_be_32_bytes(int length)
    {
        using var source = new SimulatedGpuEvidenceSource(1);
        var ex = await Assert.ThrowsAsync<GpuDeviceException>(async () => await source.GetEvidenceAsync(new byte[length], TestContext.Current.CancellationToken));
        Assert.Equal(GpuDeviceError.InvalidNonce, ex.Error);
    }
}
