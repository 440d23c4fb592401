using System.Security.Cryptography;
using System.Text;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Collateral;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Kms.Hosting;

/// <summary>
/// <c>--simulate</c>: a KMS that trusts one simulator's root (never Intel's) and runs in a simulated TD of the same
/// simulated platform. The platform is the one in <c>simulatorDirectory</c> (the agent's
/// <c>&lt;state&gt;/tdx-simulator</c>, created with <see cref="SimulatedBoot.Profile"/> when absent); this KMS's TD has
/// its own in-memory RTMRs (it never touches the agent's), the simulated boot log, and RTMR3 naming the KMS app
/// (<see cref="DefaultCompose"/>). Everything it verifies or produces is SIMULATED.
/// </summary>
public sealed class SimulatedKmsTd : IDisposable
{
    /// <summary>app-compose.json measured as this KMS's identity (compose hash, app id).</summary>
    public const string DefaultCompose =
        "{\"manifest_version\":2,\"name\":\"privateml-kms\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\","
        + "\"kms_enabled\":false,\"gateway_enabled\":false,\"local_key_provider_enabled\":false,\"public_logs\":false,"
        + "\"public_sysinfo\":false,\"public_tcbinfo\":true,\"no_instance_id\":false,\"secure_time\":false}";

    private readonly SimulatedTdxDevice _device;
    private readonly RuntimeEventLog _eventLog;

    private SimulatedKmsTd(SimulatedTdxDevice device, RuntimeEventLog eventLog, byte[] appId, byte[] composeHash, TimeProvider time)
    {
        _device = device;
        _eventLog = eventLog;
        AppId = appId;
        ComposeHash = composeHash;
        QuoteSource = RaTlsCertificates.FromEventLog(eventLog);
        Trust = new KmsTrust(
            new DcapVerifierOptions { TrustedRootCertificate = device.Platform.Pki.RootCertificate.RawData, AllowSimulated = true },
            new SimulatedCollateralSource(device.Platform, time));
    }

    public SimulatedTdxPlatform Platform => _device.Platform;

    /// <summary>DCAP trust in the simulator's root only, with collateral the simulator issues.</summary>
    public KmsTrust Trust { get; }

    /// <summary>Quotes of this KMS's simulated TD.</summary>
    public RaTlsQuoteSource QuoteSource { get; }

    public byte[] AppId { get; }

    public byte[] ComposeHash { get; }

    /// <summary>Opens the simulated platform in <paramref name="simulatorDirectory"/> (creating it when absent) and boots this KMS's TD.</summary>
    /// <exception cref="InvalidOperationException">The platform there was made with RTMR0–2 other than the simulated boot's.</exception>
    public static async Task<SimulatedKmsTd> OpenAsync(string simulatorDirectory, TimeProvider time, string compose = DefaultCompose, byte[]? instanceSeed = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        SimulatedTdxPlatform platform;
        if (SimulatedTdxPlatform.Exists(simulatorDirectory))
        {
            platform = SimulatedTdxPlatform.Load(simulatorDirectory);
        }
        else
        {
            platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions { Profile = SimulatedBoot.Profile() }, time.GetUtcNow());
            platform.Save(simulatorDirectory);
        }

        var device = SimulatedTdxDevice.InMemory(platform, time);
        var replay = RtmrReplay.Replay(SimulatedBoot.BootEvents);
        for (var i = 0; i < 3; i++)
        {
            if (!device.GetRtmr(i).AsSpan().SequenceEqual(replay[i].Span))
            {
                device.Dispose();
                throw new InvalidOperationException(
                    $"the simulator in {simulatorDirectory} was not created by the simulated agent (RTMR{i} differs from the simulated boot log); point --simulator at <agent state>/tdx-simulator");
            }
        }

        var eventLog = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = null, BootEvents = SimulatedBoot.BootEvents });
        var composeHash = SHA256.HashData(Encoding.UTF8.GetBytes(compose));
        var appId = composeHash[..20];
        var instanceId = SHA256.HashData([.. instanceSeed ?? RandomNumberGenerator.GetBytes(20), .. appId])[..20];
        await eventLog.EmitAsync(DstackEventNames.SystemPreparing, ReadOnlyMemory<byte>.Empty).ConfigureAwait(false);
        await eventLog.EmitAsync(DstackEventNames.AppId, appId).ConfigureAwait(false);
        await eventLog.EmitAsync(DstackEventNames.ComposeHash, composeHash).ConfigureAwait(false);
        await eventLog.EmitAsync(DstackEventNames.InstanceId, instanceId).ConfigureAwait(false);
        await eventLog.EmitAsync(DstackEventNames.BootMrDone, ReadOnlyMemory<byte>.Empty).ConfigureAwait(false);
        await eventLog.EmitAsync(DstackEventNames.SystemReady, ReadOnlyMemory<byte>.Empty).ConfigureAwait(false);
        return new SimulatedKmsTd(device, eventLog, appId, composeHash, time);
    }

    public void Dispose()
    {
        _eventLog.Dispose();
        _device.Dispose();
    }
}

/// <summary>
/// Collateral from a simulated platform (SIMULATED: it verifies only under that platform's root), issued on demand
/// and reused for an hour.
/// </summary>
public sealed class SimulatedCollateralSource(SimulatedTdxPlatform platform, TimeProvider time, SimulatedCollateralOptions? options = null) : ICollateralSource
{
    private readonly Lock _gate = new();
    private (DcapCollateral Collateral, DateTimeOffset Issued)? _cached;

    public Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (_cached is not { } cached || now - cached.Issued > TimeSpan.FromHours(1) || now < cached.Issued)
            {
                cached = (platform.CreateCollateral(now, options), now);
                _cached = cached;
            }

            return Task.FromResult(cached.Collateral);
        }
    }
}
