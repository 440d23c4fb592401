using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Agent.Runtime;

/// <summary>A quote together with the event log that was current when it was taken.</summary>
public sealed record MeasuredQuote(byte[] Quote, IReadOnlyList<TdxEvent> EventLog);

/// <summary>
/// The agent's state behind both APIs: the TDX device, the event log, the app identity measured into RTMR3 and the
/// app keys. Quotes and event emission are serialised, so every quote's RTMRs equal the replay of the log returned
/// with it.
/// </summary>
public sealed class AgentRuntime : IAsyncDisposable
{
    public const int ReportDataSize = 64;

    private readonly AgentOptions _options;
    private readonly IKeyProvider _keyProvider;
    private readonly RandomNumberGenerator _random;
    private readonly ILogger _logger;
    private readonly Lazy<Task> _boot;
    private AppKeys? _appKeys;

    public AgentRuntime(
        AgentOptions options,
        ITdxDevice device,
        RuntimeEventLog eventLog,
        IKeyProvider keyProvider,
        TimeProvider timeProvider,
        RandomNumberGenerator random,
        ILogger<AgentRuntime> logger)
    {
        _options = options;
        Device = device;
        EventLog = eventLog;
        _keyProvider = keyProvider;
        TimeProvider = timeProvider;
        _random = random;
        _logger = logger;
        _boot = new Lazy<Task>(BootAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public ITdxDevice Device { get; }

    public RuntimeEventLog EventLog { get; }

    public TimeProvider TimeProvider { get; }

    public AgentOptions Options => _options;

    /// <summary>Text of app-compose.json (as measured: compose_hash = SHA-256 of its bytes).</summary>
    public string AppCompose { get; private set; } = "";

    /// <summary>The <c>name</c> of app-compose.json, or "".</summary>
    public string AppName { get; private set; } = "";

    public AppKeys AppKeys => _appKeys ?? throw new InvalidOperationException("the agent has not booted");

    /// <summary>The encrypted env opened at boot (allowed names only, sorted); empty when there was none.</summary>
    public IReadOnlyList<EnvVariable> DecryptedEnv { get; private set; } = [];

    /// <summary>Runs the boot sequence once (identity into RTMR3, app keys); later calls await the same task.</summary>
    public Task EnsureBootedAsync() => _boot.Value;

    /// <summary>Takes a quote over exactly 64 bytes of report data, with the log that matches it.</summary>
    public async Task<MeasuredQuote> QuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken)
    {
        if (reportData.Length != ReportDataSize)
        {
            throw new ArgumentException("report data must be 64 bytes", nameof(reportData));
        }

        var (quote, events) = await EventLog.GetQuoteWithEventsAsync(reportData, cancellationToken);
        return new MeasuredQuote(quote, events);
    }

    /// <summary>Measures an app event into RTMR3 and the log.</summary>
    public async Task EmitEventAsync(string name, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        await EventLog.EmitAsync(name, payload, cancellationToken);
    }

    /// <summary>Parses a quote this agent produced; a device returning garbage is an agent fault.</summary>
    public static TdReportBody ReadTdReport(byte[] quote)
    {
        var parsed = TdxQuote.Parse(quote);
        return parsed.TdReport ?? throw new InvalidOperationException("the TDX device returned a non-TDX quote");
    }

    public async ValueTask DisposeAsync()
    {
        if (_boot.IsValueCreated)
        {
            try
            {
                await _boot.Value;
            }
            catch (Exception)
            {
                // Boot failures were reported when they happened.
            }
        }

        _appKeys?.Dispose();
    }

    private async Task BootAsync()
    {
        var composePath = _options.AppComposePath ?? Path.Combine(_options.StateDirectory, "app-compose.json");
        if (_options.AppComposePath is null && !File.Exists(composePath))
        {
            Directory.CreateDirectory(_options.StateDirectory);
            await File.WriteAllTextAsync(composePath, DefaultAppCompose);
        }

        var composeBytes = await File.ReadAllBytesAsync(composePath);
        AppCompose = Encoding.UTF8.GetString(composeBytes);
        AppName = ReadAppName(composeBytes);

        await _keyProvider.InitializeAsync();
        var identity = DstackAppIdentity.FromEventLog(EventLog.GetEvents());
        byte[] appId;
        byte[] instanceId;
        if (identity.SystemReady && identity.AppId is { } measuredAppId)
        {
            // Booted before (a real dstack boot, or a simulator that kept its RTMRs): the log is the identity.
            appId = measuredAppId.ToArray();
            instanceId = identity.InstanceId?.ToArray() ?? [];
            AgentLog.IdentityFromLog(_logger, Convert.ToHexStringLower(appId));
        }
        else
        {
            var composeHash = SHA256.HashData(composeBytes);
            appId = composeHash[..20];
            if (_options.AppId is { } configured && !Convert.FromHexString(configured).AsSpan().SequenceEqual(appId))
            {
                // dstack-util's rule: only a KMS can hand an upgraded compose the keys of the app id it was deployed as.
                if (_options.KmsUrls.Count == 0)
                {
                    throw new InvalidOperationException($"App upgrade is not supported without KMS: app id {configured.ToLowerInvariant()}, the compose hash gives {Convert.ToHexStringLower(appId)}");
                }

                appId = Convert.FromHexString(configured);
            }

            instanceId = SHA256.HashData([.. InstanceSeed(), .. appId])[..20];
            await EventLog.EmitAsync(DstackEventNames.SystemPreparing, ReadOnlyMemory<byte>.Empty);
            await EventLog.EmitAsync(DstackEventNames.AppId, appId);
            await EventLog.EmitAsync(DstackEventNames.ComposeHash, composeHash);
            await EventLog.EmitAsync(DstackEventNames.InstanceId, instanceId);
            await EventLog.EmitAsync(DstackEventNames.BootMrDone, ReadOnlyMemory<byte>.Empty);
            await EventLog.EmitAsync(DstackEventNames.KeyProvider, Encoding.UTF8.GetBytes(_keyProvider.KeyProviderInfo));
            await EventLog.EmitAsync(DstackEventNames.SystemReady, ReadOnlyMemory<byte>.Empty);
            AgentLog.BootMeasured(_logger, Convert.ToHexStringLower(appId), Convert.ToHexStringLower(composeHash));
        }

        _appKeys = await _keyProvider.GetAppKeysAsync(new AppKeyRequest(appId, instanceId));
        if (_options.EncryptedEnvPath is { } encryptedEnv)
        {
            var outputDirectory = _options.DecryptedEnvDirectory ?? Path.GetDirectoryName(Path.GetFullPath(encryptedEnv))!;
            var opened = await OpenEnvAsync(encryptedEnv, outputDirectory, composeBytes, new AppKeyRequest(appId, instanceId));
            if (opened is not null)
            {
                DecryptedEnv = opened.Variables;
                AgentLog.EnvDecrypted(_logger, opened.Variables.Count, outputDirectory);
                if (opened.Dropped.Count > 0)
                {
                    AgentLog.EnvDropped(_logger, string.Join(", ", opened.Dropped.Distinct()));
                }
            }
        }
    }

    /// <summary>
    /// Opens the env with the app's current env key; one sealed before a KMS key rotation does not open with it, so
    /// the KMS's earlier epochs that are not retired are tried, newest first (the app keeps running on the current
    /// epoch's keys). Nothing opens: the boot stops, as in dstack.
    /// </summary>
    private async Task<EnvParseResult?> OpenEnvAsync(string encryptedEnv, string outputDirectory, byte[] composeBytes, AppKeyRequest request)
    {
        try
        {
            return EncryptedEnvSetup.Run(encryptedEnv, outputDirectory, _appKeys!.EnvCryptKey, composeBytes);
        }
        catch (AttestationException e) when (e.Code == ErrorCode.EnvDecryptionFailed && _keyProvider is KmsKeyProvider { Epoch: > 1 and var current } kms)
        {
            for (var epoch = current - 1; epoch >= 1; epoch--)
            {
                AppKeys earlier;
                try
                {
                    earlier = await kms.GetAppKeysForEpochAsync(request, epoch);
                }
                catch (KmsClientException refused)
                {
                    AgentLog.EnvEpochUnavailable(_logger, epoch, refused.Message);
                    continue;
                }

                using (earlier)
                {
                    try
                    {
                        var opened = EncryptedEnvSetup.Run(encryptedEnv, outputDirectory, earlier.EnvCryptKey, composeBytes);
                        AgentLog.EnvFromEarlierEpoch(_logger, epoch, current);
                        return opened;
                    }
                    catch (AttestationException other) when (other.Code == ErrorCode.EnvDecryptionFailed)
                    {
                    }
                }
            }

            throw;
        }
    }

    private byte[] InstanceSeed()
    {
        var path = Path.Combine(_options.StateDirectory, "instance-id-seed");
        if (File.Exists(path))
        {
            var existing = File.ReadAllBytes(path);
            if (existing.Length == 20)
            {
                return existing;
            }

            throw new InvalidDataException($"{path} must hold 20 bytes");
        }

        var seed = new byte[20];
        _random.GetBytes(seed);
        Directory.CreateDirectory(_options.StateDirectory);
        File.WriteAllBytes(path, seed);
        return seed;
    }

    private static string ReadAppName(byte[] compose)
    {
        try
        {
            using var document = JsonDocument.Parse(compose);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("name", out var name)
                && name.ValueKind == JsonValueKind.String ? name.GetString() ?? "" : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    /// <summary>The app-compose.json written when none is given (a plain dstack manifest, local key provider).</summary>
    public const string DefaultAppCompose =
        "{\"manifest_version\":2,\"name\":\"privateml-agent\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\","
        + "\"kms_enabled\":false,\"gateway_enabled\":false,\"local_key_provider_enabled\":true,\"public_logs\":false,"
        + "\"public_sysinfo\":false,\"public_tcbinfo\":true,\"no_instance_id\":false,\"secure_time\":false}";
}
