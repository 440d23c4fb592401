using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>NVSwitch (LS10) measurements against the real NVIDIA-signed switch BIOS RIM of the same version.</summary>
public sealed class SwitchRimTests
{
    private const string Report = "spdm/ls10-switch.report.hex";
    private const string RimId = "NV_SWITCH_BIOS_5612_0002_890_9610550001";

    [Fact]
    public void TheRealSwitchReport_NamesTheRealSwitchRim_AndIsComparedWithIt()
    {
        var item = NvidiaVectors.Item(Report);
        var nonce = SpdmMeasurementReport.Parse(item.Evidence).RequestNonce.ToArray();
        var rims = new InMemoryRimSource(new Dictionary<string, byte[]> { [RimId] = SharedTestData.ReadBytes($"nvidia/rims/{RimId}.xml") });

        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { RequireRims = true }).VerifyItem(item, 0, nonce, NvidiaVectors.Now, rims);

        Assert.Equal(RimId, result.Opaque!.SwitchBiosRimId);
        var rim = result.Find(GpuEvidenceVerifier.CheckNames.SwitchRim)!;
        Assert.Equal(CheckOutcome.Passed, rim.Outcome);
        Assert.Contains("96.10.55.00.01", rim.Detail, StringComparison.Ordinal);
        var measurements = result.Find(GpuEvidenceVerifier.CheckNames.Measurements)!;
        Assert.Equal(CheckOutcome.Passed, measurements.Outcome);
        Assert.Equal(31, result.Measurements!.MatchedCount);
        Assert.True(result.Accepted, result.FirstFailure?.Detail);
    }

    [Fact]
    public void WithoutTheRim_MeasurementsAreSkipped_OrFailWhenRimsAreRequired()
    {
        var item = NvidiaVectors.Item(Report);
        var nonce = SpdmMeasurementReport.Parse(item.Evidence).RequestNonce.ToArray();
        var empty = new InMemoryRimSource(new Dictionary<string, byte[]>());

        var lenient = new GpuEvidenceVerifier().VerifyItem(item, 0, nonce, NvidiaVectors.Now, empty);
        var strict = new GpuEvidenceVerifier(new GpuVerifierOptions { RequireRims = true }).VerifyItem(item, 0, nonce, NvidiaVectors.Now, empty);

        Assert.Equal(CheckOutcome.Skipped, lenient.Find(GpuEvidenceVerifier.CheckNames.Measurements)!.Outcome);
        Assert.Equal(ErrorCode.RimNotFound, strict.Error);
    }

    [Fact]
    public void TheSwitchRim_WithABadSignature_IsRejected()
    {
        var item = NvidiaVectors.Item(Report);
        var nonce = SpdmMeasurementReport.Parse(item.Evidence).RequestNonce.ToArray();
        var rims = new InMemoryRimSource(new Dictionary<string, byte[]> { [RimId] = SharedTestData.ReadBytes($"nvidia/rims/{RimId}.bad-signature.xml") });

        var result = new GpuEvidenceVerifier().VerifyItem(item, 0, nonce, NvidiaVectors.Now, rims);

        Assert.Equal(CheckOutcome.Failed, result.Find(GpuEvidenceVerifier.CheckNames.SwitchRim)!.Outcome);
        Assert.False(result.Accepted);
    }
}
