using BenchmarkDotNet.Attributes;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Tee.Simulator.Gpu;

namespace PrivateMl.Benchmarks;

/// <summary>
/// Verification of one GPU's evidence (target ≤ 5 ms on one core): a real H100 report and chain from
/// ../shared/testdata/nvidia (chain to NVIDIA's root, SPDM signature, nonce, opaque data, FWID), the same with both
/// RIMs (two XML signatures, two RIM chains, measurement comparison), and a SIMULATED GPU payload for comparison.
/// Run: dotnet run -c Release --project bench/PrivateMl.Benchmarks -- --filter '*GpuVerification*'
/// </summary>
[MemoryDiagnoser]
public class GpuVerificationBenchmarks
{
    private static readonly DateTimeOffset Now = new(2026, 7, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset RimTime = new(2024, 6, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly GpuEvidenceVerifier _verifier = new();
    private readonly GpuEvidenceVerifier _simVerifier = new(new GpuVerifierOptions { AllowSimulated = true });
    private GpuEvidenceItem _real550 = null!;
    private byte[] _nonce550 = null!;
    private GpuEvidenceItem _real545 = null!;
    private byte[] _nonce545 = null!;
    private InMemoryRimSource _rims545 = null!;
    private string _simPayload = null!;
    private byte[] _simNonce = null!;

    [GlobalSetup]
    public void Setup()
    {
        var nvidia = Environment.GetEnvironmentVariable("PRIVATEML_NVIDIA_TESTDATA") is { Length: > 0 } dir
            ? dir
            : Path.Combine(RepositoryRoot(), "..", "shared", "testdata", "nvidia");
        (_real550, _nonce550) = Load(nvidia, "hopper-550.90.07");
        (_real545, _nonce545) = Load(nvidia, "hopper-545.00");
        _rims545 = new InMemoryRimSource(new Dictionary<string, byte[]>
        {
            ["NV_GPU_DRIVER_GH100_545.00"] = File.ReadAllBytes(Path.Combine(nvidia, "rims", "driver-GH100-545.00-test.swidtag")),
            ["NV_GPU_VBIOS_1010_0200_882_96005E0001"] = File.ReadAllBytes(Path.Combine(nvidia, "rims", "vbios-1010_0200_882_96005E0001-test.swidtag")),
        });
        using var sim = new SimulatedGpuEvidenceSource(1);
        _simNonce = new byte[32];
        _simPayload = sim.GetEvidenceAsync(_simNonce).AsTask().GetAwaiter().GetResult().ToJson();
        if (!_verifier.VerifyItem(_real550, 0, _nonce550, Now).Accepted || !_verifier.VerifyItem(_real545, 0, _nonce545, RimTime, _rims545).Accepted)
        {
            throw new InvalidOperationException("benchmark inputs do not verify");
        }
    }

    [Benchmark(Baseline = true, Description = "real H100: chain + signature + nonce + opaque + FWID")]
    public bool VerifyRealGpu() => _verifier.VerifyItem(_real550, 0, _nonce550, Now).Accepted;

    [Benchmark(Description = "real H100 + driver and VBIOS RIMs (XML-DSig, chains, comparison)")]
    public bool VerifyRealGpuWithRims() => _verifier.VerifyItem(_real545, 0, _nonce545, RimTime, _rims545).Accepted;

    [Benchmark(Description = "SIMULATED payload JSON: parse + verify one GPU")]
    public bool VerifySimulatedPayload() => _simVerifier.Verify(_simPayload, _simNonce, Now).Accepted;

    [Benchmark(Description = "SPDM parse + opaque decode only")]
    public int ParseOnly() => GpuOpaqueData.Parse(SpdmMeasurementReport.Parse(_real550.Evidence).OpaqueData).Fields.Count;

    private static (GpuEvidenceItem, byte[]) Load(string nvidia, string name)
    {
        var report = Convert.FromHexString(File.ReadAllText(Path.Combine(nvidia, "spdm", name + ".report.hex")).Trim());
        var item = new GpuEvidenceItem { Arch = GpuArchitecture.Hopper, Evidence = report, CertificateChainPem = File.ReadAllBytes(Path.Combine(nvidia, "spdm", name + ".chain.pem")) };
        return (item, report[4..36]);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "global.json")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("global.json not found above " + AppContext.BaseDirectory);
    }
}
