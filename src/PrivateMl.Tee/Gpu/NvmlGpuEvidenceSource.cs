using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using PrivateMl.Attestation.Nvidia;

namespace PrivateMl.Tee.Gpu;

/// <summary>One NVML call and how it ended; <paramref name="Gpu"/> is the device index for a per-GPU call.</summary>
public sealed record NvmlCall(string Function, int Result, string Message, int? Gpu = null)
{
    /// <summary>Not an NVML code: the call returned success but no report or no certificate chain.</summary>
    public const int ReturnedNothing = -1;

    public bool Succeeded => Result == NvmlLayout.Success;

    public override string ToString() =>
        $"{Function}{(Gpu is { } gpu ? $"[GPU {gpu}]" : string.Empty)}{(Result == ReturnedNothing ? " returned nothing" : $" = {Result}")} ({Message})";
}

/// <summary>One GPU as NVML describes it.</summary>
public sealed record NvmlGpuInfo(int Index, string Name, string Uuid, uint ArchitectureCode, string? Arch, string VbiosVersion);

/// <summary>The confidential-computing state of this machine, and every NVML call made to learn it.</summary>
public sealed record GpuCcStatus
{
    public required string DriverVersion { get; init; }
    public required IReadOnlyList<NvmlGpuInfo> Gpus { get; init; }

    /// <summary>How many GPUs NVML counts; more than <see cref="Gpus"/> when one could not be opened.</summary>
    public uint DeviceCount { get; init; }
    public uint? CpuCaps { get; init; }
    public uint? GpusCaps { get; init; }
    public uint? Environment { get; init; }
    public uint? CcFeature { get; init; }
    public uint? DevToolsMode { get; init; }
    public uint? MultiGpuMode { get; init; }
    public uint? GpusReadyState { get; init; }
    public required IReadOnlyList<NvmlCall> Calls { get; init; }

    /// <summary>Collection is possible when CC is on, or in protected-PCIe multi-GPU mode (as NVIDIA's SDKs decide).</summary>
    public bool EvidenceAvailable => CcFeature == 1 || MultiGpuMode == 1;

    /// <summary>The state in words, one line per fact.</summary>
    public IEnumerable<string> Describe()
    {
        yield return $"driver {DriverVersion}, {Gpus.Count} GPU(s){(DeviceCount > Gpus.Count ? $" ({DeviceCount} counted by NVML: {DeviceCount - Gpus.Count} could not be opened)" : string.Empty)}";
        foreach (var g in Gpus)
        {
            yield return $"GPU {g.Index}: {g.Name}, {g.Uuid}, architecture {g.Arch ?? $"unsupported ({g.ArchitectureCode})"}, VBIOS {g.VbiosVersion}";
        }

        yield return $"CC capabilities: CPU {CpuCaps switch { 0 => "none", 1 => "AMD SEV", 2 => "Intel TDX", 3 => "AMD SEV-SNP", 4 => "AMD SNP vTOM", null => "unknown", _ => CpuCaps.ToString() }}, GPUs {GpusCaps switch { 1 => "CC capable", 0 => "not CC capable", _ => "unknown" }}";
        yield return $"CC mode: {CcFeature switch { 1 => "ON", 0 => "OFF", _ => "unknown" }}; environment {Environment switch { 0 => "unavailable", 1 => "simulation", 2 => "production", _ => "unknown" }}; dev-tools mode {DevToolsMode switch { 1 => "ON (not for production)", 0 => "off", _ => "unknown" }}; multi-GPU mode {MultiGpuMode switch { 0 => "none", 1 => "protected PCIe", 2 => "NVLE", _ => "unknown" }}";
        yield return $"GPUs ready state: {GpusReadyState switch { 1 => "accepting client requests", 0 => "not ready (set after attestation: nvidia-smi conf-compute -srs 1)", _ => "unknown" }}";
    }
}

/// <summary>
/// Evidence from every GPU of this machine through NVML (<c>libnvidia-ml.so.1</c>): checks the CC state first, then
/// per GPU reads the attestation report over the caller's nonce and the attestation certificate chain. NVML calls
/// are serialized (one collection at a time). A missing driver, no GPU, or CC off is a
/// <see cref="GpuDeviceException"/> that says so and lists the NVML calls that were refused.
/// </summary>
public sealed class NvmlGpuEvidenceSource(INvmlApi? api = null) : IGpuEvidenceSource
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private readonly INvmlApi _api = api ?? new NativeNvmlApi();

    public string Name => "nvml";

    /// <summary>Reads the CC state and GPU list (no evidence). Throws only when the driver or library is missing.</summary>
    public GpuCcStatus GetStatus() => Run(calls => Probe(calls));

    public async ValueTask<GpuEvidencePayload> GetEvidenceAsync(ReadOnlyMemory<byte> nonce, CancellationToken cancellationToken = default)
    {
        if (nonce.Length != SpdmLayout.NonceSize)
        {
            throw new GpuDeviceException(GpuDeviceError.InvalidNonce, $"the nonce must be {SpdmLayout.NonceSize} bytes, got {nonce.Length}");
        }

        await Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // NVML blocks for tens to hundreds of milliseconds per GPU (an SPDM exchange with each GPU's firmware).
            // The caller may be a socket thread (the gateway's inline I/O runs requests there), which would stall
            // every connection it serves for that long, so the calls run on a pool thread.
            var copy = nonce.ToArray();
            return await Task.Run(() => Run(calls => Collect(copy, calls)).Payload, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Collects evidence and returns it with the status and every call made (for diagnostics and the CLI).</summary>
    public (GpuEvidencePayload Payload, GpuCcStatus Status, TimeSpan Elapsed) Collect(ReadOnlySpan<byte> nonce)
    {
        if (nonce.Length != SpdmLayout.NonceSize)
        {
            throw new GpuDeviceException(GpuDeviceError.InvalidNonce, $"the nonce must be {SpdmLayout.NonceSize} bytes, got {nonce.Length}");
        }

        var copy = nonce.ToArray();
        Gate.Wait();
        try
        {
            return Run(calls => Collect(copy, calls));
        }
        finally
        {
            Gate.Release();
        }
    }

    private T Run<T>(Func<List<NvmlCall>, T> body)
    {
        var calls = new List<NvmlCall>();
        int rc;
        try
        {
            rc = _api.Init();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new GpuDeviceException(GpuDeviceError.DriverMissing, "the NVIDIA driver is not installed: libnvidia-ml.so.1 (NVML) could not be loaded, so there is no GPU to attest on this machine", e);
        }

        if (rc != NvmlLayout.Success)
        {
            var msg = _api.ErrorString(rc);
            throw new GpuDeviceException(rc is 9 or 12 or 18 ? GpuDeviceError.DriverMissing : GpuDeviceError.NvmlCallFailed,
                $"nvmlInit_v2 failed with {rc} ({msg}): " + (rc == 9 ? "the NVIDIA kernel driver is not loaded" : rc == 18 ? "the NVML library and kernel driver versions differ" : "NVML is unusable"));
        }

        calls.Add(new NvmlCall("nvmlInit_v2", rc, "Success"));
        try
        {
            return body(calls);
        }
        finally
        {
            _api.Shutdown();
        }
    }

    private int Call(List<NvmlCall> calls, string function, int rc, int? gpu = null)
    {
        calls.Add(new NvmlCall(function, rc, rc == NvmlLayout.Success ? "Success" : _api.ErrorString(rc), gpu));
        return rc;
    }

    private GpuCcStatus Probe(List<NvmlCall> calls)
    {
        Call(calls, "nvmlSystemGetDriverVersion", _api.SystemGetDriverVersion(out var driver));
        if (Call(calls, "nvmlDeviceGetCount_v2", _api.DeviceGetCount(out var count)) != NvmlLayout.Success)
        {
            count = 0;
        }

        var gpus = new List<NvmlGpuInfo>();
        for (uint i = 0; i < Math.Min(count, (uint)GpuEvidencePayload.MaxItems); i++)
        {
            if (Call(calls, "nvmlDeviceGetHandleByIndex_v2", _api.DeviceGetHandleByIndex(i, out var h), (int)i) != NvmlLayout.Success)
            {
                continue;
            }

            Call(calls, "nvmlDeviceGetName", _api.DeviceGetName(h, out var name), (int)i);
            Call(calls, "nvmlDeviceGetUUID", _api.DeviceGetUuid(h, out var uuid), (int)i);
            var archRc = Call(calls, "nvmlDeviceGetArchitecture", _api.DeviceGetArchitecture(h, out var arch), (int)i);
            Call(calls, "nvmlDeviceGetVbiosVersion", _api.DeviceGetVbiosVersion(h, out var vbios), (int)i);
            gpus.Add(new NvmlGpuInfo((int)i, name, uuid, arch, archRc == 0 ? GpuArchitecture.FromNvml(arch) : null, vbios.ToUpperInvariant()));
        }

        Span<byte> caps = stackalloc byte[NvmlLayout.SystemCapsSize];
        var capsOk = Call(calls, "nvmlSystemGetConfComputeCapabilities", _api.SystemGetConfComputeCapabilities(caps)) == 0;
        Span<byte> state = stackalloc byte[NvmlLayout.SystemStateSize];
        var stateOk = Call(calls, "nvmlSystemGetConfComputeState", _api.SystemGetConfComputeState(state)) == 0;
        Span<byte> settings = stackalloc byte[NvmlLayout.SettingsSize];
        BinaryPrimitives.WriteUInt32LittleEndian(settings, NvmlLayout.SettingsVersion1);
        var settingsOk = Call(calls, "nvmlSystemGetConfComputeSettings", _api.SystemGetConfComputeSettings(settings)) == 0;
        var readyOk = Call(calls, "nvmlSystemGetConfComputeGpusReadyState", _api.SystemGetConfComputeGpusReadyState(out var ready)) == 0;

        return new GpuCcStatus
        {
            DriverVersion = driver,
            Gpus = gpus,
            DeviceCount = count,
            CpuCaps = capsOk ? U32(caps, 0) : null,
            GpusCaps = capsOk ? U32(caps, 4) : null,
            Environment = stateOk ? U32(state, 0) : null,
            CcFeature = stateOk ? U32(state, 4) : null,
            DevToolsMode = stateOk ? U32(state, 8) : null,
            MultiGpuMode = settingsOk ? U32(settings, 16) : null,
            GpusReadyState = readyOk ? ready : null,
            Calls = calls,
        };
    }

    private (GpuEvidencePayload Payload, GpuCcStatus Status, TimeSpan Elapsed) Collect(ReadOnlySpan<byte> nonce, List<NvmlCall> calls)
    {
        var started = Stopwatch.GetTimestamp();
        var status = Probe(calls);
        if (status.DeviceCount != status.Gpus.Count)
        {
            // Evidence from the GPUs that did open would read as the whole host's; a host is attested whole or not at all.
            var missing = status.DeviceCount > GpuEvidencePayload.MaxItems
                ? $"NVML counts {status.DeviceCount} GPUs, more than the {GpuEvidencePayload.MaxItems} one payload may carry"
                : $"NVML counts {status.DeviceCount} GPUs but only {status.Gpus.Count} could be opened ({string.Join("; ", calls.Where(c => c.Function == "nvmlDeviceGetHandleByIndex_v2" && !c.Succeeded))})";
            throw new GpuDeviceException(GpuDeviceError.NvmlCallFailed, missing) { NvmlCalls = [.. calls] };
        }

        if (status.Gpus.Count == 0)
        {
            throw new GpuDeviceException(GpuDeviceError.NoGpu, $"NVML (driver {status.DriverVersion}) reports no GPU") { NvmlCalls = [.. calls] };
        }

        var items = new List<GpuEvidenceItem>(status.Gpus.Count);
        var refused = new List<NvmlCall>();
        var report = new byte[NvmlLayout.ReportSize];
        var cert = new byte[NvmlLayout.CertificateSize];
        foreach (var gpu in status.Gpus)
        {
            var device = gpu.Index;
            _api.DeviceGetHandleByIndex((uint)gpu.Index, out var h);
            Array.Clear(report);
            nonce.CopyTo(report.AsSpan(NvmlLayout.NonceOffset));
            var reportRc = Call(calls, "nvmlDeviceGetConfComputeGpuAttestationReport", _api.DeviceGetConfComputeGpuAttestationReport(h, report), device);
            Array.Clear(cert);
            var certRc = Call(calls, "nvmlDeviceGetConfComputeGpuCertificate", _api.DeviceGetConfComputeGpuCertificate(h, cert), device);
            if (reportRc != 0 || certRc != 0)
            {
                refused.AddRange(calls.TakeLast(2).Where(c => !c.Succeeded));
                continue;
            }

            var reportSize = (int)Math.Min(U32(report, NvmlLayout.ReportSizeOffset), (uint)NvmlLayout.ReportCapacity);
            var chainSize = (int)Math.Min(U32(cert, NvmlLayout.AttestationCertChainSizeOffset), (uint)NvmlLayout.AttestationCertChainCapacity);
            if (reportSize == 0 || chainSize == 0)
            {
                var empty = new NvmlCall("nvmlDeviceGetConfComputeGpuAttestationReport", NvmlCall.ReturnedNothing, $"{reportSize} report bytes and {chainSize} certificate bytes", device);
                refused.Add(empty);
                calls.Add(empty);
                continue;
            }

            items.Add(new GpuEvidenceItem
            {
                Arch = gpu.Arch ?? throw new GpuDeviceException(GpuDeviceError.UnsupportedArchitecture, $"GPU {gpu.Index} ({gpu.Name}) has NVML architecture {gpu.ArchitectureCode}; only Hopper (9) and Blackwell (10) support GPU attestation") { NvmlCalls = [.. calls] },
                Evidence = report.AsSpan(NvmlLayout.ReportOffset, reportSize).ToArray(),
                CertificateChainPem = cert.AsSpan(NvmlLayout.AttestationCertChainOffset, chainSize).ToArray(),
            });
        }

        if (refused.Count > 0 || items.Count == 0)
        {
            var why = new StringBuilder();
            if (!status.EvidenceAvailable)
            {
                why.Append(System.Globalization.CultureInfo.InvariantCulture, $"confidential computing mode is {(status.CcFeature == 0 ? "OFF" : "unknown")} on this machine (ccFeature {status.CcFeature?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}, multi-GPU mode {status.MultiGpuMode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}), so the GPUs produce no attestation evidence. ");
            }

            why.Append("NVML refused: ").Append(string.Join("; ", refused.Select(c => c.ToString())));
            throw new GpuDeviceException(status.EvidenceAvailable ? GpuDeviceError.NvmlCallFailed : GpuDeviceError.ConfidentialComputingOff, why.ToString()) { NvmlCalls = [.. calls] };
        }

        var arch = items[0].Arch;
        var payload = new GpuEvidencePayload { Nonce = Convert.ToHexStringLower(nonce), Arch = arch, Items = items };
        return (payload, status, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>
    /// One line per GPU asked for evidence: how its attestation-report and certificate calls ended. A host's GPUs can
    /// differ (one in CC mode, one not; one reset), and a single refusal withholds the whole payload, so an operator
    /// needs to see which GPU said what.
    /// </summary>
    public static IEnumerable<string> DescribeEvidenceCalls(IEnumerable<NvmlCall> calls)
    {
        ArgumentNullException.ThrowIfNull(calls);
        var perGpu = new SortedDictionary<int, (NvmlCall? Report, NvmlCall? Certificate)>();
        foreach (var call in calls)
        {
            if (call.Gpu is not { } index)
            {
                continue;
            }

            var entry = perGpu.GetValueOrDefault(index);
            switch (call.Function)
            {
                // A report call that succeeded but returned nothing is listed again with that outcome: the last word wins.
                case "nvmlDeviceGetConfComputeGpuAttestationReport":
                    entry.Report = call;
                    break;
                case "nvmlDeviceGetConfComputeGpuCertificate":
                    entry.Certificate = call;
                    break;
                default:
                    continue;
            }

            perGpu[index] = entry;
        }

        foreach (var (index, (report, certificate)) in perGpu)
        {
            var collected = report is { Succeeded: true } && certificate is { Succeeded: true };
            yield return $"GPU {index}: {(collected ? "evidence collected" : "no evidence")} (attestation report: {Outcome(report)}; certificate chain: {Outcome(certificate)})";
        }

        static string Outcome(NvmlCall? call) => call switch
        {
            null => "not asked",
            { Succeeded: true } => "ok",
            { Result: NvmlCall.ReturnedNothing } => $"returned nothing ({call.Message})",
            _ => $"{call.Result} ({call.Message})",
        };
    }

    private static uint U32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]);
}
