using PrivateMl.Attestation.Nvidia;

namespace PrivateMl.Tee.Gpu;

/// <summary>
/// Something that returns evidence from every GPU of this machine over one 32-byte nonce, as the payload NEAR / dstack
/// return and NRAS accepts: NVML (<see cref="NvmlGpuEvidenceSource"/>) or the simulator
/// (<c>Simulator.Gpu.SimulatedGpuEvidenceSource</c>). Trouble is a <see cref="GpuDeviceException"/> that says in words
/// what is missing (driver, GPU, CC mode) and which calls failed.
/// </summary>
public interface IGpuEvidenceSource
{
    /// <summary>"nvml", "simulated", …</summary>
    string Name { get; }

    /// <summary>Evidence of every GPU (NVML index order), each over <paramref name="nonce"/> (exactly 32 bytes).</summary>
    ValueTask<GpuEvidencePayload> GetEvidenceAsync(ReadOnlyMemory<byte> nonce, CancellationToken cancellationToken = default);
}

/// <summary>Why GPU evidence could not be collected.</summary>
public enum GpuDeviceError
{
    DriverMissing,
    NoGpu,
    ConfidentialComputingOff,
    UnsupportedArchitecture,
    NvmlCallFailed,
    InvalidNonce,
}

/// <summary>GPU collection failed; <see cref="Error"/> is the contract, the message says it in words.</summary>
public sealed class GpuDeviceException : Exception
{
    public GpuDeviceException(GpuDeviceError error, string message)
        : base(message) => Error = error;

    public GpuDeviceException(GpuDeviceError error, string message, Exception inner)
        : base(message, inner) => Error = error;

    public GpuDeviceError Error { get; }

    /// <summary>Every NVML call made before the failure (empty when NVML was not reached), to report per GPU.</summary>
    public IReadOnlyList<NvmlCall> NvmlCalls { get; init; } = [];
}
