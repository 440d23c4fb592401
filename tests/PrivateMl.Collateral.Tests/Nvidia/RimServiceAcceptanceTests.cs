using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Trust;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Nvidia;
using PrivateMl.Tee.Simulator.Gpu;

namespace PrivateMl.Collateral.Tests.Nvidia;

/// <summary>
/// Acceptance end to end with RIMs fetched from a RIM service: a real loopback HTTP server serves driver and VBIOS RIMs
/// that this test signs with its own key (certified under the SIMULATED root), fetched through
/// <see cref="RimServiceSource"/> and <see cref="CachingRimSource"/>, and compared by <see cref="GpuEvidenceVerifier"/>
/// with simulated GPU evidence whose measurements match.
/// </summary>
public sealed class RimServiceAcceptanceTests : IAsyncDisposable
{
    private readonly SimulatedGpuEvidenceSource _gpus = new(2);
    private readonly ECDsa _signerKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly X509Certificate2 _signer;
    private readonly X509Certificate2 _root = X509CertificateLoader.LoadCertificate(NvidiaSimulatedRootCa.Der);
    private readonly string _cacheDir = Path.Combine(Path.GetTempPath(), "privateml-rim-accept-" + Guid.NewGuid().ToString("N"));
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    public RimServiceAcceptanceTests()
    {
        using var rootKey = ECDsa.Create();
        rootKey.ImportFromPem(SimulatedGpu.SimulatedRootKeyPem);
        var request = new CertificateRequest("CN=Test RIM Signer, O=PrivateMl tests", _signerKey, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        _signer = request.Create(_root.SubjectName, X509SignatureGenerator.CreateForECDsa(rootKey), DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1), [0x7E, 0x57]);
    }

    [Fact]
    public async Task MatchingRims_FromTheService_AreVerified_AndTheEvidenceIsAccepted_ThenServedFromTheCache()
    {
        await using var service = await FakeRimService.StartAsync(Rims(tamperIndex: null));
        var rims = new CachingRimSource(new RimServiceSource(_http, service.BaseAddress), _cacheDir);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await _gpus.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true, RequireRims = true });

        var first = verifier.Verify(payload, nonce, DateTimeOffset.UtcNow, rims);
        var requestsAfterFirst = service.Requests.Count;
        var second = verifier.Verify(payload, nonce, DateTimeOffset.UtcNow, rims);

        Assert.True(first.Accepted, first.FirstFailure?.Detail);
        Assert.Equal(2, first.Gpus.Count);
        foreach (var gpu in first.Gpus)
        {
            Assert.Equal(CheckOutcome.Passed, gpu.Find(GpuEvidenceVerifier.CheckNames.DriverRim)!.Outcome);
            Assert.Equal(CheckOutcome.Passed, gpu.Find(GpuEvidenceVerifier.CheckNames.VbiosRim)!.Outcome);
            Assert.Contains("Test RIM Signer", gpu.Find(GpuEvidenceVerifier.CheckNames.DriverRim)!.Detail, StringComparison.Ordinal);
            Assert.Equal(CheckOutcome.Passed, gpu.Find(GpuEvidenceVerifier.CheckNames.Measurements)!.Outcome);
            Assert.Empty(gpu.Measurements!.Mismatches);
            // Every active index of both RIMs is compared; index 35 is skipped because the simulated NVDEC0 is disabled.
            Assert.Equal(SimulatedGpuFirmware.DriverIndices.Count + SimulatedGpuFirmware.VbiosIndices.Count, gpu.Measurements.MatchedCount + gpu.Measurements.Skipped.Count);
            Assert.Equal([RimComparison.Nvdec0Index], gpu.Measurements.Skipped);
        }

        Assert.Equal(2, requestsAfterFirst);
        Assert.Contains($"/v1/rim/NV_GPU_DRIVER_GH100_{_gpus.Firmware.DriverVersion}", service.Requests);
        Assert.True(second.Accepted);
        Assert.Equal(requestsAfterFirst, service.Requests.Count);
        Assert.Equal(2, Directory.GetFiles(_cacheDir).Length);
    }

    [Fact]
    public async Task ARimFromTheService_WithOneDifferentMeasurement_IsAuthentic_ButTheEvidenceIsRejected()
    {
        var tampered = SimulatedGpuFirmware.DriverIndices[3];
        await using var service = await FakeRimService.StartAsync(Rims(tamperIndex: tampered));
        var rims = new RimServiceSource(_http, service.BaseAddress);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await _gpus.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);

        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true }).Verify(payload, nonce, DateTimeOffset.UtcNow, rims);

        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.RimMeasurementMismatch, result.Error);
        Assert.Equal(CheckOutcome.Passed, result.Gpus[0].Find(GpuEvidenceVerifier.CheckNames.DriverRim)!.Outcome);
        Assert.Equal(tampered, Assert.Single(result.Gpus[0].Measurements!.Mismatches).Index);
    }

    /// <summary>Driver and VBIOS RIMs for the simulated firmware, signed with this test's key; one driver value changed when asked.</summary>
    private Dictionary<string, byte[]> Rims(int? tamperIndex)
    {
        var firmware = _gpus.Firmware;
        var m = firmware.Measurements();
        IReadOnlyDictionary<int, IReadOnlyList<byte[]>> Pick(IEnumerable<int> indices) => indices.ToDictionary(
            i => i,
            i => (IReadOnlyList<byte[]>)[i == tamperIndex ? SHA384.HashData(m[i]) : m[i]]);
        return new Dictionary<string, byte[]>
        {
            [$"NV_GPU_DRIVER_GH100_{firmware.DriverVersion}"] = RimDocumentBuilder.Build("GH100", firmware.DriverVersion, "GPU", Pick(SimulatedGpuFirmware.DriverIndices), _signerKey, [_signer, _root]),
            [$"NV_GPU_VBIOS_{firmware.Project}_{firmware.ProjectSku}_{firmware.ChipSku}_{firmware.VbiosVersion.Replace(".", string.Empty, StringComparison.Ordinal)}"] =
                RimDocumentBuilder.Build("GH100", firmware.VbiosVersion, "GPU", Pick(SimulatedGpuFirmware.VbiosIndices), _signerKey, [_signer, _root]),
        };
    }

    public ValueTask DisposeAsync()
    {
        _http.Dispose();
        _gpus.Dispose();
        _signer.Dispose();
        _signerKey.Dispose();
        _root.Dispose();
        if (Directory.Exists(_cacheDir))
        {
            Directory.Delete(_cacheDir, recursive: true);
        }

        return ValueTask.CompletedTask;
    }
}
