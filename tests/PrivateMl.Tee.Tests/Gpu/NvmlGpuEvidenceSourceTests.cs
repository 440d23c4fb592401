using System.Buffers.Binary;
using System.Security.Cryptography;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Tee.Gpu;
using PrivateMl.Tee.Simulator.Gpu;

namespace PrivateMl.Tee.Tests.Gpu;

/// <summary>The NVML collector against a fake driver that behaves as observed on an H100 (struct layouts, 999 with CC off).</summary>
public sealed class NvmlGpuEvidenceSourceTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Missing_driver_says_so_in_words()
    {
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Missing = true });
        var ex = await Assert.ThrowsAsync<GpuDeviceException>(async () => await source.GetEvidenceAsync(new byte[32], TestContext.Current.CancellationToken));
        Assert.Equal(GpuDeviceError.DriverMissing, ex.Error);
        Assert.Contains("driver is not installed", ex.Message, StringComparison.Ordinal);
        Assert.Equal(GpuDeviceError.DriverMissing, Assert.Throws<GpuDeviceException>(() => source.GetStatus()).Error);
    }

    [Fact]
    public async Task Real_library_absent_on_this_machine_is_reported_not_thrown_raw()
    {
        if (File.Exists("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"))
        {
            Assert.Skip("an NVIDIA driver is installed here");
        }

        var ex = await Assert.ThrowsAsync<GpuDeviceException>(async () => await new NvmlGpuEvidenceSource().GetEvidenceAsync(new byte[32], TestContext.Current.CancellationToken));
        Assert.Equal(GpuDeviceError.DriverMissing, ex.Error);
    }

    [Fact]
    public async Task Cc_off_names_the_refused_calls()
    {
        using var gpus = new SimulatedGpuEvidenceSource(2);
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = false });
        var status = source.GetStatus();
        Assert.False(status.EvidenceAvailable);
        Assert.Contains(status.Describe(), l => l.StartsWith("CC mode: OFF", StringComparison.Ordinal));
        var ex = await Assert.ThrowsAsync<GpuDeviceException>(async () => await source.GetEvidenceAsync(new byte[32], TestContext.Current.CancellationToken));
        Assert.Equal(GpuDeviceError.ConfidentialComputingOff, ex.Error);
        Assert.Contains("confidential computing mode is OFF", ex.Message, StringComparison.Ordinal);
        Assert.Contains("nvmlDeviceGetConfComputeGpuAttestationReport[GPU 1] = 999 (Unknown Error)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("nvmlDeviceGetConfComputeGpuCertificate[GPU 0] = 999", ex.Message, StringComparison.Ordinal);
        Assert.Equal(
            [
                "GPU 0: no evidence (attestation report: 999 (Unknown Error); certificate chain: 999 (Unknown Error))",
                "GPU 1: no evidence (attestation report: 999 (Unknown Error); certificate chain: 999 (Unknown Error))",
            ],
            NvmlGpuEvidenceSource.DescribeEvidenceCalls(ex.NvmlCalls));
    }

    [Fact]
    public void One_refusing_gpu_withholds_the_whole_payload_and_is_named()
    {
        using var gpus = new SimulatedGpuEvidenceSource(4);
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = true, RefusingGpu = 2 });
        var ex = Assert.Throws<GpuDeviceException>(() => source.Collect(new byte[32]));
        Assert.Equal(GpuDeviceError.NvmlCallFailed, ex.Error);
        Assert.Contains("nvmlDeviceGetConfComputeGpuAttestationReport[GPU 2] = 999", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("[GPU 0]", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("confidential computing mode is", ex.Message, StringComparison.Ordinal);
        Assert.Equal(
            [
                "GPU 0: evidence collected (attestation report: ok; certificate chain: ok)",
                "GPU 1: evidence collected (attestation report: ok; certificate chain: ok)",
                "GPU 2: no evidence (attestation report: 999 (Unknown Error); certificate chain: ok)",
                "GPU 3: evidence collected (attestation report: ok; certificate chain: ok)",
            ],
            NvmlGpuEvidenceSource.DescribeEvidenceCalls(ex.NvmlCalls));
    }

    [Fact]
    public void A_gpu_with_an_empty_report_is_named()
    {
        using var gpus = new SimulatedGpuEvidenceSource(2);
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = true, EmptyReportGpu = 1 });
        var ex = Assert.Throws<GpuDeviceException>(() => source.Collect(new byte[32]));
        Assert.Equal(GpuDeviceError.NvmlCallFailed, ex.Error);
        var lines = NvmlGpuEvidenceSource.DescribeEvidenceCalls(ex.NvmlCalls).ToList();
        Assert.Equal("GPU 0: evidence collected (attestation report: ok; certificate chain: ok)", lines[0]);
        Assert.Matches(@"^GPU 1: no evidence \(attestation report: returned nothing \(0 report bytes and [1-9][0-9]* certificate bytes\); certificate chain: ok\)$", lines[1]);
        Assert.Matches(@"nvmlDeviceGetConfComputeGpuAttestationReport\[GPU 1\] returned nothing \(0 report bytes and [1-9][0-9]* certificate bytes\)", ex.Message);
    }

    [Fact]
    public void A_gpu_nvml_counts_but_cannot_open_fails_the_collection_instead_of_leaving_it_out()
    {
        using var gpus = new SimulatedGpuEvidenceSource(4);
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = true, UnopenableGpu = 1 });
        var status = source.GetStatus();
        Assert.Equal(3, status.Gpus.Count);
        Assert.StartsWith("driver 580.159.04, 3 GPU(s) (4 counted by NVML: 1 could not be opened)", status.Describe().First(), StringComparison.Ordinal);
        var ex = Assert.Throws<GpuDeviceException>(() => source.Collect(new byte[32]));
        Assert.Equal(GpuDeviceError.NvmlCallFailed, ex.Error);
        Assert.Contains("NVML counts 4 GPUs but only 3 could be opened (nvmlDeviceGetHandleByIndex_v2[GPU 1] = 15", ex.Message, StringComparison.Ordinal);
        Assert.Empty(NvmlGpuEvidenceSource.DescribeEvidenceCalls(ex.NvmlCalls));
    }

    [Fact]
    public async Task Cc_on_collects_every_gpu_over_the_nonce_and_it_verifies()
    {
        using var gpus = new SimulatedGpuEvidenceSource(4);
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = true });
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await source.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        Assert.Equal(4, payload.Items.Count);
        Assert.All(payload.Items, i => Assert.Equal(0, i.CertificateChainPem[^1])); // NVML's trailing NULs pass through
        var result = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true }).Verify(GpuEvidencePayload.Parse(payload.ToJson()), nonce, Now, gpus.CreateRims());
        Assert.True(result.Accepted, result.FirstFailure?.Detail);
        Assert.Equal(4, result.Gpus.Count);
        var (_, status, _) = source.Collect(nonce);
        Assert.All(NvmlGpuEvidenceSource.DescribeEvidenceCalls(status.Calls), line => Assert.Contains(": evidence collected (attestation report: ok; certificate chain: ok)", line, StringComparison.Ordinal));
        Assert.Equal(4, NvmlGpuEvidenceSource.DescribeEvidenceCalls(status.Calls).Count());
    }

    [Fact]
    public async Task Collection_never_blocks_the_callers_thread()
    {
        using var gpus = new SimulatedGpuEvidenceSource(2);
        using var release = new ManualResetEventSlim();
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = true, Hold = release });

        var collecting = source.GetEvidenceAsync(RandomNumberGenerator.GetBytes(32), TestContext.Current.CancellationToken);

        // Returned while NVML is still inside the first GPU's report call (the fake holds it up to 10 s).
        Assert.False(collecting.IsCompleted);
        release.Set();
        Assert.Equal(2, (await collecting).Items.Count);
    }

    [Fact]
    public void Unsupported_architecture_is_named()
    {
        using var gpus = new SimulatedGpuEvidenceSource(1);
        var source = new NvmlGpuEvidenceSource(new FakeNvml { Gpus = gpus, CcOn = true, Arch = 8 });
        var ex = Assert.Throws<GpuDeviceException>(() => source.Collect(new byte[32]));
        Assert.Equal(GpuDeviceError.UnsupportedArchitecture, ex.Error);
    }

    private sealed class FakeNvml : INvmlApi
    {
        public bool Missing { get; init; }
        public bool CcOn { get; init; }
        public uint Arch { get; init; } = 9;
        public SimulatedGpuEvidenceSource? Gpus { get; init; }
        public int? RefusingGpu { get; init; }
        public int? UnopenableGpu { get; init; }
        public int? EmptyReportGpu { get; init; }
        public ManualResetEventSlim? Hold { get; init; }

        public int Init() => Missing ? throw new DllNotFoundException("libnvidia-ml.so.1") : 0;
        public int Shutdown() => 0;
        public string ErrorString(int rc) => rc == 999 ? "Unknown Error" : $"error {rc}";

        public int SystemGetDriverVersion(out string version)
        {
            version = "580.159.04";
            return 0;
        }

        public int DeviceGetCount(out uint count)
        {
            count = (uint)(Gpus?.Gpus.Count ?? 0);
            return 0;
        }

        public int DeviceGetHandleByIndex(uint index, out nint device)
        {
            device = (nint)(index + 100);
            return index == UnopenableGpu ? 15 : 0;
        }

        public int DeviceGetArchitecture(nint device, out uint architecture)
        {
            architecture = Arch;
            return 0;
        }

        public int DeviceGetName(nint device, out string name)
        {
            name = "NVIDIA H100 80GB HBM3 (fake)";
            return 0;
        }

        public int DeviceGetUuid(nint device, out string uuid)
        {
            uuid = $"GPU-fake-{device}";
            return 0;
        }

        public int DeviceGetVbiosVersion(nint device, out string version)
        {
            version = "96.00.da.00.0c";
            return 0;
        }

        public int SystemGetConfComputeCapabilities(Span<byte> caps)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(caps, 2);
            BinaryPrimitives.WriteUInt32LittleEndian(caps[4..], 1);
            return 0;
        }

        public int SystemGetConfComputeState(Span<byte> state)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(state, CcOn ? 2u : 0u);
            BinaryPrimitives.WriteUInt32LittleEndian(state[4..], CcOn ? 1u : 0u);
            return 0;
        }

        public int SystemGetConfComputeSettings(Span<byte> settings) =>
            BinaryPrimitives.ReadUInt32LittleEndian(settings) == NvmlLayout.SettingsVersion1 ? 0 : 25;

        public int SystemGetConfComputeGpusReadyState(out uint ready)
        {
            ready = 0;
            return 0;
        }

        public int DeviceGetConfComputeGpuAttestationReport(nint device, Span<byte> report)
        {
            if (!CcOn || device - 100 == RefusingGpu)
            {
                return 999;
            }

            Assert.Equal(NvmlLayout.ReportSize, report.Length);
            Hold?.Wait(TimeSpan.FromSeconds(10));
            if (device - 100 == EmptyReportGpu)
            {
                return 0;
            }

            var evidence = Gpus!.Gpus[(int)(device - 100)].AttestationReport(report.Slice(NvmlLayout.NonceOffset, 32));
            BinaryPrimitives.WriteUInt32LittleEndian(report[NvmlLayout.ReportSizeOffset..], (uint)evidence.Length);
            evidence.CopyTo(report[NvmlLayout.ReportOffset..]);
            return 0;
        }

        public int DeviceGetConfComputeGpuCertificate(nint device, Span<byte> certificate)
        {
            if (!CcOn)
            {
                return 999;
            }

            Assert.Equal(NvmlLayout.CertificateSize, certificate.Length);
            var pem = Gpus!.Gpus[(int)(device - 100)].CertificateChainPem;
            BinaryPrimitives.WriteUInt32LittleEndian(certificate[NvmlLayout.AttestationCertChainSizeOffset..], (uint)pem.Length + 5);
            pem.CopyTo(certificate[NvmlLayout.AttestationCertChainOffset..]);
            return 0;
        }
    }
}
