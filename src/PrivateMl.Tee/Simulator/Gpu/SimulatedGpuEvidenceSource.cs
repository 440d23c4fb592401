using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Trust;
using PrivateMl.Tee.Gpu;

namespace PrivateMl.Tee.Simulator.Gpu;

/// <summary>
/// SIMULATED — any number of software GPUs behind the same <see cref="IGpuEvidenceSource"/> contract as NVML, plus
/// matching driver and VBIOS RIMs signed under the SIMULATED root, so every verifier path (RIMs included) runs.
/// </summary>
public sealed class SimulatedGpuEvidenceSource : IGpuEvidenceSource, IDisposable
{
    public const int MaxGpus = 64;

    private readonly List<SimulatedGpu> _gpus;

    public SimulatedGpuEvidenceSource(int gpuCount = 1, SimulatedGpuFirmware? firmware = null)
    {
        if (gpuCount is < 1 or > MaxGpus)
        {
            throw new ArgumentOutOfRangeException(nameof(gpuCount), $"1 to {MaxGpus} simulated GPUs");
        }

        Firmware = firmware ?? SimulatedGpuFirmware.Default;
        _gpus = [.. Enumerable.Range(0, gpuCount).Select(i => new SimulatedGpu(i, Firmware))];
    }

    public string Name => "simulated";

    public SimulatedGpuFirmware Firmware { get; }

    public IReadOnlyList<SimulatedGpu> Gpus => _gpus;

    public ValueTask<GpuEvidencePayload> GetEvidenceAsync(ReadOnlyMemory<byte> nonce, CancellationToken cancellationToken = default)
    {
        if (nonce.Length != SpdmLayout.NonceSize)
        {
            throw new GpuDeviceException(GpuDeviceError.InvalidNonce, $"the nonce must be {SpdmLayout.NonceSize} bytes, got {nonce.Length}");
        }

        cancellationToken.ThrowIfCancellationRequested();
        var items = _gpus.Select(g => new GpuEvidenceItem
        {
            Arch = GpuArchitecture.Hopper,
            Evidence = g.AttestationReport(nonce.Span),
            CertificateChainPem = g.CertificateChainPem.ToArray(),
        }).ToList();
        return ValueTask.FromResult(new GpuEvidencePayload { Nonce = Convert.ToHexStringLower(nonce.Span), Arch = GpuArchitecture.Hopper, Items = items });
    }

    /// <summary>Driver and VBIOS RIMs that match these GPUs, signed under the SIMULATED root, keyed by RIM ID.</summary>
    public InMemoryRimSource CreateRims()
    {
        using var rootKey = ECDsa.Create();
        rootKey.ImportFromPem(SimulatedGpu.SimulatedRootKeyPem);
        using var root = X509CertificateLoader.LoadCertificate(NvidiaSimulatedRootCa.Der);
        using var signerKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var req = new CertificateRequest("CN=SIMULATED RIM Signer, O=PrivateMl Simulator", signerKey, HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        using var signer = req.Create(root.SubjectName, X509SignatureGenerator.CreateForECDsa(rootKey), new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(9999, 12, 31, 0, 0, 0, TimeSpan.Zero), [0x52, 0x49, 0x4d]);
        var m = Firmware.Measurements();
        IReadOnlyDictionary<int, IReadOnlyList<byte[]>> Pick(IEnumerable<int> indices) => indices.ToDictionary(i => i, i => (IReadOnlyList<byte[]>)[m[i]]);
        var driver = RimDocumentBuilder.Build("GH100", Firmware.DriverVersion, "GPU", Pick(SimulatedGpuFirmware.DriverIndices), signerKey, [signer, root]);
        var vbios = RimDocumentBuilder.Build("GH100", Firmware.VbiosVersion, "GPU", Pick(SimulatedGpuFirmware.VbiosIndices), signerKey, [signer, root]);
        return new InMemoryRimSource(new Dictionary<string, byte[]>
        {
            [$"NV_GPU_DRIVER_GH100_{Firmware.DriverVersion}"] = driver,
            [$"NV_GPU_VBIOS_{Firmware.Project}_{Firmware.ProjectSku}_{Firmware.ChipSku}_{Firmware.VbiosVersion.Replace(".", string.Empty, StringComparison.Ordinal)}"] = vbios,
        });
    }

    public void Dispose()
    {
        foreach (var g in _gpus)
        {
            g.Dispose();
        }
    }
}
