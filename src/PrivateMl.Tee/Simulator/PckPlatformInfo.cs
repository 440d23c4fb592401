namespace PrivateMl.Tee.Simulator;

/// <summary>Which PCK CA issues the PCK leaf; it decides the CRL (<c>ca=platform</c> or <c>ca=processor</c>).</summary>
public enum PckCaKind
{
    Platform,
    Processor,
}

/// <summary>The SGX Type value of the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1.5).</summary>
public enum SgxType
{
    Standard = 0,
    Scalable = 1,
    ScalableWithIntegrity = 2,
}

/// <summary>
/// The platform facts a PCK certificate carries in its SGX extension (research/tdx-dcap.md §3.2). The defaults describe a
/// simulated Platform-CA machine shaped like the real samples (FMSPC differs from every real one on purpose).
/// </summary>
public sealed record PckPlatformInfo
{
    /// <summary>FMSPC of the simulated platform: ASCII "SIM" followed by three zero bytes.</summary>
    public static ReadOnlyMemory<byte> DefaultFmspc { get; } = new byte[] { 0x53, 0x49, 0x4D, 0x00, 0x00, 0x00 };

    public PckCaKind CaKind { get; init; } = PckCaKind.Platform;

    /// <summary>PPID, 16 bytes.</summary>
    public ReadOnlyMemory<byte> Ppid { get; init; } = Enumerable.Range(0x50, 16).Select(i => (byte)i).ToArray();

    /// <summary>SGX TCB components 1..16; also written as CPUSVN (.2.18), as in every real sample.</summary>
    public ReadOnlyMemory<byte> SgxTcbComponents { get; init; } = new byte[] { 3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0 };

    public ushort PceSvn { get; init; } = 11;

    /// <summary>PCE-ID, 2 bytes.</summary>
    public ReadOnlyMemory<byte> PceId { get; init; } = new byte[2];

    /// <summary>FMSPC, 6 bytes.</summary>
    public ReadOnlyMemory<byte> Fmspc { get; init; } = DefaultFmspc;

    public SgxType SgxType { get; init; } = SgxType.Scalable;

    /// <summary>PlatformInstanceID, 16 bytes (Platform-CA certificates only).</summary>
    public ReadOnlyMemory<byte> PlatformInstanceId { get; init; } = Enumerable.Range(0xA0, 16).Select(i => (byte)i).ToArray();

    public bool DynamicPlatform { get; init; } = true;

    public bool CachedKeys { get; init; } = true;

    public bool SmtEnabled { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> when a field has the wrong length (a caller bug).</summary>
    public void Validate()
    {
        Require(Ppid, 16, nameof(Ppid));
        Require(SgxTcbComponents, 16, nameof(SgxTcbComponents));
        Require(PceId, 2, nameof(PceId));
        Require(Fmspc, 6, nameof(Fmspc));
        Require(PlatformInstanceId, 16, nameof(PlatformInstanceId));
    }

    internal static void Require(ReadOnlyMemory<byte> value, int length, string name)
    {
        if (value.Length != length)
        {
            throw new ArgumentException($"{name} must be {length} bytes, got {value.Length}", name);
        }
    }
}
