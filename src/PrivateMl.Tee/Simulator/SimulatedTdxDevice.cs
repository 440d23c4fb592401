using System.Security.Cryptography;
using System.Text.Json;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// The software TDX device. Quotes carry exactly the requested report_data and the current RTMR values; RTMR2 and RTMR3
/// are extended as the TDX module does (RTMR = SHA-384(RTMR ‖ digest)). With a state directory, keys, certificates,
/// profile and RTMR state persist (files 0600), so a restart keeps the same identity. Thread-safe.
/// </summary>
public sealed class SimulatedTdxDevice : ITdxDevice, IDisposable
{
    private const string RtmrStateFile = "rtmr.json";

    private readonly Lock _gate = new();
    private readonly TimeProvider _timeProvider;
    private readonly byte[] _rtmr2;
    private readonly byte[] _rtmr3;

    private SimulatedTdxDevice(SimulatedTdxPlatform platform, string? stateDirectory, TimeProvider timeProvider)
    {
        Platform = platform;
        StateDirectory = stateDirectory;
        _timeProvider = timeProvider;
        _rtmr2 = platform.Profile.Rtmr2.ToArray();
        _rtmr3 = new byte[48];
    }

    public string ProviderName => "simulator";

    public bool IsSimulated => true;

    public SimulatedTdxPlatform Platform { get; }

    /// <summary>The state directory, or null for an in-memory device.</summary>
    public string? StateDirectory { get; }

    /// <summary>A device over <paramref name="platform"/> that persists nothing (tests).</summary>
    public static SimulatedTdxDevice InMemory(SimulatedTdxPlatform platform, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(timeProvider);
        return new SimulatedTdxDevice(platform, stateDirectory: null, timeProvider);
    }

    /// <summary>
    /// Loads the simulator from <paramref name="stateDirectory"/>, or creates and saves a new one there (with
    /// <paramref name="initOptions"/>) when the directory holds none.
    /// </summary>
    public static SimulatedTdxDevice OpenOrCreate(string stateDirectory, TimeProvider timeProvider, SimulatedPlatformOptions? initOptions = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(stateDirectory);
        ArgumentNullException.ThrowIfNull(timeProvider);
        SimulatedTdxPlatform platform;
        if (SimulatedTdxPlatform.Exists(stateDirectory))
        {
            platform = SimulatedTdxPlatform.Load(stateDirectory);
        }
        else
        {
            platform = SimulatedTdxPlatform.Create(initOptions ?? new SimulatedPlatformOptions(), timeProvider.GetUtcNow());
            platform.Save(stateDirectory);
        }

        var device = new SimulatedTdxDevice(platform, stateDirectory, timeProvider);
        device.LoadRtmrState();
        return device;
    }

    /// <summary>Current value of RTMR <paramref name="index"/> (0..3), 48 bytes.</summary>
    public byte[] GetRtmr(int index)
    {
        lock (_gate)
        {
            return index switch
            {
                0 => Platform.Profile.Rtmr0.ToArray(),
                1 => Platform.Profile.Rtmr1.ToArray(),
                2 => (byte[])_rtmr2.Clone(),
                3 => (byte[])_rtmr3.Clone(),
                _ => throw new ArgumentOutOfRangeException(nameof(index), index, "RTMR index must be 0..3"),
            };
        }
    }

    public ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        if (reportData.Length != 64)
        {
            throw new ArgumentException($"report data must be 64 bytes, got {reportData.Length}", nameof(reportData));
        }

        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            var defects = _rtmr2.AsSpan().SequenceEqual(Platform.Profile.Rtmr2.Span)
                ? null
                : new QuoteDefects { BodyProfile = Platform.Profile with { Rtmr2 = (byte[])_rtmr2.Clone() } };
            return ValueTask.FromResult(Platform.CreateQuote(reportData.Span, _rtmr3, defects));
        }
    }

    public ValueTask ExtendRtmrAsync(int index, ReadOnlyMemory<byte> digest, CancellationToken cancellationToken = default)
    {
        if (index is not (2 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, "only RTMR2 and RTMR3 can be extended from the guest");
        }

        if (digest.Length != 48)
        {
            throw new ArgumentException($"RTMR digest must be 48 bytes (SHA-384), got {digest.Length}", nameof(digest));
        }

        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            var register = index == 2 ? _rtmr2 : _rtmr3;
            Span<byte> input = stackalloc byte[96];
            register.CopyTo(input);
            digest.Span.CopyTo(input[48..]);
            SHA384.HashData(input, register);
            SaveRtmrState();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Returns RTMR2 to the profile value and RTMR3 to zero, as a reboot would.</summary>
    public void ResetRuntimeMeasurements()
    {
        lock (_gate)
        {
            Platform.Profile.Rtmr2.Span.CopyTo(_rtmr2);
            Array.Clear(_rtmr3);
            SaveRtmrState();
        }
    }

    /// <summary>Collateral matching this device, issued at the injected clock's "now".</summary>
    public DcapCollateral CreateCollateral(SimulatedCollateralOptions? options = null) =>
        Platform.CreateCollateral(_timeProvider.GetUtcNow(), options);

    public void Dispose() => Platform.Dispose();

    private void SaveRtmrState()
    {
        if (StateDirectory is null)
        {
            return;
        }

        StateFiles.WriteText(Path.Combine(StateDirectory, RtmrStateFile), SimulatorJson.Write(writer =>
        {
            writer.WriteString("rtmr2", Convert.ToHexStringLower(_rtmr2));
            writer.WriteString("rtmr3", Convert.ToHexStringLower(_rtmr3));
        }));
    }

    private void LoadRtmrState()
    {
        var path = Path.Combine(StateDirectory!, RtmrStateFile);
        if (!File.Exists(path))
        {
            return;
        }

        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var rtmr2 = Convert.FromHexString(document.RootElement.GetProperty("rtmr2").GetString() ?? "");
        var rtmr3 = Convert.FromHexString(document.RootElement.GetProperty("rtmr3").GetString() ?? "");
        if (rtmr2.Length != 48 || rtmr3.Length != 48)
        {
            throw new InvalidDataException($"{path}: RTMR values must be 48 bytes");
        }

        rtmr2.CopyTo(_rtmr2, 0);
        rtmr3.CopyTo(_rtmr3, 0);
    }
}
