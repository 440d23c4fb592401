namespace PrivateMl.Vmm;

/// <summary>Why the VMM refused a request; stable names an operator (and a test) can match on.</summary>
public enum VmmErrorCode
{
    /// <summary>A malformed or out-of-range argument (name, size, port spec, hex).</summary>
    InvalidArgument = 1,

    /// <summary>app-compose.json does not parse as dstack's AppCompose.</summary>
    InvalidCompose,

    /// <summary>No image of that name under image_path, or its metadata.json is unusable.</summary>
    UnknownImage,

    /// <summary>No VM with that id.</summary>
    UnknownVm,

    /// <summary>A GPU slot that is not an NVIDIA GPU/NVSwitch on this host.</summary>
    UnknownGpu,

    /// <summary>A GPU slot another VM holds.</summary>
    GpuInUse,

    /// <summary>A host port that another VM maps or that cannot be bound.</summary>
    PortInUse,

    /// <summary>The host cannot run what was asked (no qemu, no TDX in qemu, no KVM for passthrough).</summary>
    HostUnsupported,

    /// <summary>The VM is in a state that does not allow the request (e.g. start while running).</summary>
    InvalidState,

    /// <summary>qemu could not be started or died at once.</summary>
    LaunchFailed,

    /// <summary>A call to another service (KMS) failed.</summary>
    Upstream,

    /// <summary>The guest could not be asked to power off (no QMP socket, or qemu did not answer on it).</summary>
    GuestUnreachable,

    /// <summary>qemu-img could not create or grow the VM's data disk.</summary>
    DiskFailed,
}

/// <summary>A refused VMM request: a code and a sentence for the operator. The only exception VMM code throws for bad input.</summary>
public sealed class VmmException(VmmErrorCode code, string message) : Exception(message)
{
    public VmmErrorCode Code { get; } = code;

    public static VmmException Invalid(string message) => new(VmmErrorCode.InvalidArgument, message);
}
