namespace PrivateMl.Tee.Tdx;

/// <summary>
/// What the guest can ask of the TDX module: a quote over 64 bytes of report data, and an RTMR extension.
/// Implemented by the configfs-tsm provider, the legacy /dev/tdx_guest provider and the simulator.
/// </summary>
public interface ITdxDevice
{
    /// <summary>Short name shown to users: "configfs-tsm", "tdx-guest" or "simulator".</summary>
    string ProviderName { get; }

    /// <summary>True for the software TDX; everything that reports on its evidence must say SIMULATED.</summary>
    bool IsSimulated { get; }

    /// <summary>Returns a complete DCAP quote whose report_data is exactly <paramref name="reportData"/> (64 bytes).</summary>
    ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default);

    /// <summary>Extends RTMR <paramref name="index"/> with a 48-byte SHA-384 digest: RTMR = SHA384(RTMR ‖ digest).</summary>
    ValueTask ExtendRtmrAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default);
}
