using System.Runtime.InteropServices;
using System.Text;

namespace PrivateMl.Tee.Gpu;

/// <summary>
/// The NVML calls GPU attestation needs, as an interface so tests can stand in for the driver. Struct-valued calls
/// take zeroed byte buffers of the exact C sizes (<see cref="NvmlLayout"/>); the caller reads fields at fixed offsets.
/// Every method returns NVML's <c>nvmlReturn_t</c>.
/// </summary>
public interface INvmlApi
{
    int Init();
    int Shutdown();
    string ErrorString(int rc);
    int SystemGetDriverVersion(out string version);
    int DeviceGetCount(out uint count);
    int DeviceGetHandleByIndex(uint index, out nint device);
    int DeviceGetArchitecture(nint device, out uint architecture);
    int DeviceGetName(nint device, out string name);
    int DeviceGetUuid(nint device, out string uuid);
    int DeviceGetVbiosVersion(nint device, out string version);
    int SystemGetConfComputeCapabilities(Span<byte> caps);
    int SystemGetConfComputeState(Span<byte> state);
    int SystemGetConfComputeSettings(Span<byte> settings);
    int SystemGetConfComputeGpusReadyState(out uint ready);
    int DeviceGetConfComputeGpuAttestationReport(nint device, Span<byte> report);
    int DeviceGetConfComputeGpuCertificate(nint device, Span<byte> certificate);
}

/// <summary>NVML struct sizes and offsets (nvml.h, API version 13; confirmed against the compiled header).</summary>
public static class NvmlLayout
{
    public const int Success = 0;
    public const int ErrorLibraryNotFound = 12;
    public const int ErrorUnknown = 999;
    public const int SystemCapsSize = 8;
    public const int SystemStateSize = 12;
    public const int SettingsSize = 20;
    public const uint SettingsVersion1 = 20 | (1u << 24);
    public const int CertificateSize = 9224;
    public const int CertChainSizeOffset = 0;
    public const int AttestationCertChainSizeOffset = 4;
    public const int CertChainOffset = 8;
    public const int AttestationCertChainOffset = 4104;
    public const int AttestationCertChainCapacity = 0x1400;
    public const int ReportSize = 12332;
    public const int ReportSizeOffset = 4;
    public const int NonceOffset = 12;
    public const int ReportOffset = 44;
    public const int ReportCapacity = 0x2000;
    public const int StringBufferSize = 96;
}

/// <summary>The real NVML, through <c>libnvidia-ml.so.1</c> (a missing library throws <see cref="DllNotFoundException"/> on first use).</summary>
public sealed partial class NativeNvmlApi : INvmlApi
{
    private const string Library = "libnvidia-ml.so.1";

    public int Init() => nvmlInit_v2();

    public int Shutdown() => nvmlShutdown();

    public string ErrorString(int rc) => Marshal.PtrToStringUTF8(nvmlErrorString(rc)) ?? $"NVML error {rc}";

    public unsafe int SystemGetDriverVersion(out string version)
    {
        var buf = stackalloc byte[NvmlLayout.StringBufferSize];
        var rc = nvmlSystemGetDriverVersion(buf, NvmlLayout.StringBufferSize);
        version = rc == 0 ? CString(buf) : string.Empty;
        return rc;
    }

    public int DeviceGetCount(out uint count) => nvmlDeviceGetCount_v2(out count);

    public int DeviceGetHandleByIndex(uint index, out nint device) => nvmlDeviceGetHandleByIndex_v2(index, out device);

    public int DeviceGetArchitecture(nint device, out uint architecture) => nvmlDeviceGetArchitecture(device, out architecture);

    public unsafe int DeviceGetName(nint device, out string name)
    {
        var buf = stackalloc byte[NvmlLayout.StringBufferSize];
        var rc = nvmlDeviceGetName(device, buf, NvmlLayout.StringBufferSize);
        name = rc == 0 ? CString(buf) : string.Empty;
        return rc;
    }

    public unsafe int DeviceGetUuid(nint device, out string uuid)
    {
        var buf = stackalloc byte[NvmlLayout.StringBufferSize];
        var rc = nvmlDeviceGetUUID(device, buf, NvmlLayout.StringBufferSize);
        uuid = rc == 0 ? CString(buf) : string.Empty;
        return rc;
    }

    public unsafe int DeviceGetVbiosVersion(nint device, out string version)
    {
        var buf = stackalloc byte[NvmlLayout.StringBufferSize];
        var rc = nvmlDeviceGetVbiosVersion(device, buf, NvmlLayout.StringBufferSize);
        version = rc == 0 ? CString(buf) : string.Empty;
        return rc;
    }

    public unsafe int SystemGetConfComputeCapabilities(Span<byte> caps)
    {
        fixed (byte* p = caps)
        {
            return nvmlSystemGetConfComputeCapabilities(p);
        }
    }

    public unsafe int SystemGetConfComputeState(Span<byte> state)
    {
        fixed (byte* p = state)
        {
            return nvmlSystemGetConfComputeState(p);
        }
    }

    public unsafe int SystemGetConfComputeSettings(Span<byte> settings)
    {
        fixed (byte* p = settings)
        {
            return nvmlSystemGetConfComputeSettings(p);
        }
    }

    public int SystemGetConfComputeGpusReadyState(out uint ready) => nvmlSystemGetConfComputeGpusReadyState(out ready);

    public unsafe int DeviceGetConfComputeGpuAttestationReport(nint device, Span<byte> report)
    {
        fixed (byte* p = report)
        {
            return nvmlDeviceGetConfComputeGpuAttestationReport(device, p);
        }
    }

    public unsafe int DeviceGetConfComputeGpuCertificate(nint device, Span<byte> certificate)
    {
        fixed (byte* p = certificate)
        {
            return nvmlDeviceGetConfComputeGpuCertificate(device, p);
        }
    }

    private static unsafe string CString(byte* p) => Encoding.UTF8.GetString(new ReadOnlySpan<byte>(p, NvmlLayout.StringBufferSize).SplitAtNul());

    [LibraryImport(Library)]
    private static partial int nvmlInit_v2();

    [LibraryImport(Library)]
    private static partial int nvmlShutdown();

    [LibraryImport(Library)]
    private static partial nint nvmlErrorString(int result);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlSystemGetDriverVersion(byte* version, uint length);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetCount_v2(out uint count);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetHandleByIndex_v2(uint index, out nint device);

    [LibraryImport(Library)]
    private static partial int nvmlDeviceGetArchitecture(nint device, out uint arch);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlDeviceGetName(nint device, byte* name, uint length);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlDeviceGetUUID(nint device, byte* uuid, uint length);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlDeviceGetVbiosVersion(nint device, byte* version, uint length);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlSystemGetConfComputeCapabilities(byte* capabilities);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlSystemGetConfComputeState(byte* state);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlSystemGetConfComputeSettings(byte* settings);

    [LibraryImport(Library)]
    private static partial int nvmlSystemGetConfComputeGpusReadyState(out uint isAcceptingWork);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlDeviceGetConfComputeGpuAttestationReport(nint device, byte* report);

    [LibraryImport(Library)]
    private static unsafe partial int nvmlDeviceGetConfComputeGpuCertificate(nint device, byte* certificate);
}

internal static class SpanExtensions
{
    public static ReadOnlySpan<byte> SplitAtNul(this ReadOnlySpan<byte> s)
    {
        var i = s.IndexOf((byte)0);
        return i < 0 ? s : s[..i];
    }
}
