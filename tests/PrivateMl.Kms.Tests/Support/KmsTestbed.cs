using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Hosting;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Policy;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Kms.Tests.Support;

/// <summary>
/// A KMS in --simulate mode on loopback (real TLS, port chosen by the OS) over a simulated platform in a temporary
/// directory, plus helpers to boot simulated CVMs of that platform (or a foreign one) and call the KMS as them.
/// </summary>
internal sealed class KmsTestbed : IAsyncDisposable
{
    public const string AppCompose = "{\"manifest_version\":2,\"name\":\"kms-test-app\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"kms_enabled\":true}";

    private readonly bool _ownsDirectory;

    private KmsTestbed(string directory, bool ownsDirectory, ManualClock clock)
    {
        Directory = directory;
        _ownsDirectory = ownsDirectory;
        Clock = clock;
    }

    public string Directory { get; }

    public string SimulatorDirectory => Path.Combine(Directory, "tdx-simulator");

    public string StateDirectory { get; private set; } = "";

    public ManualClock Clock { get; }

    public SimulatedKmsTd KmsTd { get; private set; } = null!;

    public WebApplication App { get; private set; } = null!;

    public Uri Url { get; private set; } = null!;

    public KmsOptions Options { get; private set; } = null!;

    public X509Certificate2 RootCa { get; private set; } = null!;

    public HttpClient? Webhook { get; private set; }

    /// <summary>Starts a KMS; <paramref name="shareWith"/> reuses another testbed's directory and simulator (a second KMS).</summary>
    public static async Task<KmsTestbed> StartAsync(
        KmsPolicy? policy = null,
        SimulatedCollateralOptions? collateral = null,
        KmsTestbed? shareWith = null,
        string stateName = "kms",
        bool onboardOnly = false,
        HttpClient? webhook = null)
    {
        var directory = shareWith?.Directory ?? System.IO.Directory.CreateTempSubdirectory("privateml-kms-").FullName;
        var bed = new KmsTestbed(directory, shareWith is null, shareWith?.Clock ?? new ManualClock(DateTimeOffset.UtcNow));
        bed.StateDirectory = Path.Combine(directory, stateName);
        bed.KmsTd = await SimulatedKmsTd.OpenAsync(bed.SimulatorDirectory, bed.Clock);
        bed.Webhook = webhook;
        bed.Options = new KmsOptions
        {
            StateDirectory = bed.StateDirectory,
            ListenUrl = new Uri("https://127.0.0.1:0"),
            Policy = policy ?? KmsPolicy.Default,
            Simulated = true,
            QuoteSource = bed.KmsTd.QuoteSource,
        };
        if (!onboardOnly)
        {
            await bed.StartServerAsync(collateral);
        }

        return bed;
    }

    public KmsTrust Trust(SimulatedCollateralOptions? collateral = null) => collateral is null
        ? KmsTd.Trust
        : KmsTd.Trust with { Collateral = new SimulatedCollateralSource(KmsTd.Platform, Clock, collateral) };

    public async Task StartServerAsync(SimulatedCollateralOptions? collateral = null)
    {
        App = await KmsHost.BuildAsync(Options, Trust(collateral), Clock, Webhook, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        await App.StartAsync();
        Url = new Uri(App.Urls.Single());
        using var client = new KmsClient(Url);
        RootCa = X509Certificate2.CreateFromPem((await client.GetTempCaCertAsync(CancellationToken.None)).CaCertPem);
    }

    /// <summary>Stops the server and starts it again on the same state directory.</summary>
    public async Task RestartAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        await StartServerAsync();
    }

    /// <summary>A simulated CVM of this testbed's platform, booted with <paramref name="compose"/>.</summary>
    public Task<SimulatedCvm> BootCvmAsync(string compose = AppCompose, string? keyProvider = null) =>
        SimulatedCvm.BootAsync(SimulatedTdxPlatform.Load(SimulatorDirectory), Clock, compose, keyProvider);

    /// <summary>Calls <paramref name="method"/> with a client certificate (or none).</summary>
    public async Task<JsonDocument> CallAsync(string method, X509Certificate2? certificate, Action<Utf8JsonWriter>? body = null, Uri? url = null)
    {
        using var client = new KmsClient(url ?? Url, new KmsClientOptions { ClientCertificate = certificate, TrustedRootCa = RootCa });
        return await client.CallAsync(method, body, CancellationToken.None);
    }

    /// <summary>Calls GetAppKey as <paramref name="cvm"/>, with a fresh well-formed RA-TLS certificate.</summary>
    public async Task<JsonDocument> GetAppKeyAsync(SimulatedCvm cvm, Action<Utf8JsonWriter>? body = null)
    {
        using var certificate = await cvm.CertificateAsync();
        return await CallAsync("GetAppKey", certificate, body);
    }

    /// <summary>Calls GetAppKey and returns the refusal code the KMS answered (fails the test if it answered keys).</summary>
    public async Task<ErrorCode> RefusalAsync(X509Certificate2? certificate, Action<Utf8JsonWriter>? body = null)
    {
        var e = await Assert.ThrowsAsync<KmsClientException>(() => CallAsync("GetAppKey", certificate, body));
        Assert.Equal(400, e.StatusCode);
        Assert.NotNull(e.RefusalCode);
        return Enum.Parse<ErrorCode>(e.RefusalCode);
    }

    /// <summary>The refusal code for GetAppKey as <paramref name="cvm"/>, with a fresh well-formed RA-TLS certificate.</summary>
    public async Task<ErrorCode> GetAppKeyRefusalAsync(SimulatedCvm cvm, Action<Utf8JsonWriter>? body = null)
    {
        using var certificate = await cvm.CertificateAsync();
        return await RefusalAsync(certificate, body);
    }

    /// <summary>Boots a CVM of this platform (see <see cref="BootCvmAsync"/>) and returns the refusal code for its GetAppKey.</summary>
    public async Task<ErrorCode> RefusalForNewCvmAsync(string compose = AppCompose, string? keyProvider = null)
    {
        using var cvm = await BootCvmAsync(compose, keyProvider);
        return await GetAppKeyRefusalAsync(cvm);
    }

    public async ValueTask DisposeAsync()
    {
        if (App is not null)
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }

        KmsTd?.Dispose();
        RootCa?.Dispose();
        if (_ownsDirectory)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
                // A second testbed may still hold files; the OS cleans temp.
            }
        }
    }
}

/// <summary>A simulated CVM: its own in-memory RTMRs on a simulated platform, the simulated boot log, an app identity in RTMR3.</summary>
internal sealed class SimulatedCvm : IDisposable
{
    private readonly SimulatedTdxDevice _device;

    private SimulatedCvm(SimulatedTdxDevice device, RuntimeEventLog log, byte[] appId, byte[] composeHash, byte[] instanceId, TimeProvider time)
    {
        _device = device;
        EventLog = log;
        AppId = appId;
        ComposeHash = composeHash;
        InstanceId = instanceId;
        Time = time;
    }

    public RuntimeEventLog EventLog { get; }

    public TimeProvider Time { get; }

    public byte[] AppId { get; }

    public byte[] ComposeHash { get; }

    public byte[] InstanceId { get; }

    public SimulatedTdxPlatform Platform => _device.Platform;

    public static async Task<SimulatedCvm> BootAsync(SimulatedTdxPlatform platform, TimeProvider time, string compose, string? keyProvider = null)
    {
        var device = SimulatedTdxDevice.InMemory(platform, time);
        var log = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = null, BootEvents = SimulatedBoot.BootEvents });
        var composeHash = SHA256.HashData(Encoding.UTF8.GetBytes(compose));
        var appId = composeHash[..20];
        var instanceId = SHA256.HashData([.. RandomNumberGenerator.GetBytes(20), .. appId])[..20];
        await log.EmitAsync(DstackEventNames.SystemPreparing, ReadOnlyMemory<byte>.Empty);
        await log.EmitAsync(DstackEventNames.AppId, appId);
        await log.EmitAsync(DstackEventNames.ComposeHash, composeHash);
        await log.EmitAsync(DstackEventNames.InstanceId, instanceId);
        await log.EmitAsync(DstackEventNames.BootMrDone, ReadOnlyMemory<byte>.Empty);
        if (keyProvider is not null)
        {
            await log.EmitAsync(DstackEventNames.KeyProvider, Encoding.UTF8.GetBytes(keyProvider));
        }

        await log.EmitAsync(DstackEventNames.SystemReady, ReadOnlyMemory<byte>.Empty);
        return new SimulatedCvm(device, log, appId, composeHash, instanceId, time);
    }

    public RaTlsQuoteSource Quotes => RaTlsCertificates.FromEventLog(EventLog);

    /// <summary>A well-formed RA-TLS client certificate valid from now − 1 min for 10 minutes.</summary>
    public Task<X509Certificate2> CertificateAsync() =>
        RaTlsCertificates.CreateClientAsync(Quotes, Time.GetUtcNow(), TimeSpan.FromMinutes(10), null, RandomNumberGenerator.Create(), CancellationToken.None);

    /// <summary>A certificate for <paramref name="key"/> with the given evidence and validity.</summary>
    public static X509Certificate2 Certificate(ECDsa key, RaTlsEvidence evidence, DateTimeOffset notBefore, DateTimeOffset notAfter) =>
        RaTlsCertificates.CreateClient(key, evidence, notBefore, notAfter, null);

    /// <summary>
    /// A certificate for <paramref name="key"/> carrying a fresh quote of this CVM over the RA-TLS report data of
    /// <paramref name="quotedKey"/> (<paramref name="key"/> itself unless given), optionally with a TD profile override.
    /// </summary>
    public X509Certificate2 Certificate(ECDsa key, DateTimeOffset notBefore, DateTimeOffset notAfter, ECDsa? quotedKey = null, TdProfile? bodyProfile = null) =>
        Certificate(key, Evidence(CertificateFactory.RaTlsReportData(quotedKey ?? key), bodyProfile), notBefore, notAfter);

    /// <summary>A quote and log over <paramref name="reportData"/>, optionally with a TD profile override (e.g. debug).</summary>
    public RaTlsEvidence Evidence(byte[] reportData, TdProfile? bodyProfile = null)
    {
        var events = EventLog.GetEvents();
        var rtmr3 = RtmrReplay.Replay(events).Rtmr3.ToArray();
        var quote = Platform.CreateQuote(reportData, rtmr3, bodyProfile is null ? null : new QuoteDefects { BodyProfile = bodyProfile });
        return new RaTlsEvidence(quote, TdxEventLog.Serialize(events));
    }

    public void Dispose()
    {
        EventLog.Dispose();
        _device.Dispose();
    }
}
