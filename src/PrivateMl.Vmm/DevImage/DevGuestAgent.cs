using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Vmm.DevImage;

/// <summary>How the development guest gets its keys and env, decided from the shared folder as dstack-util does.</summary>
/// <param name="KmsUrls">The KMSs to take the app keys from, in the order tried (.sys-config.json's <c>kms_urls</c>); empty: local keys.</param>
/// <param name="EncryptedEnvPath">The guest's copy of <c>.encrypted-env</c>; null when the host gave none.</param>
public sealed record DevGuestKeyPlan(IReadOnlyList<Uri> KmsUrls, string? EncryptedEnvPath)
{
    /// <summary>
    /// A KMS app (compose <c>kms_enabled</c> / key provider kms) takes its keys from the <c>kms_urls</c> entries, tried in
    /// order until one gives them, each of which must be https; an encrypted env needs the KMS's env key, so an app with
    /// another key provider that was given one stops the boot (dstack cannot open it either) instead of running without
    /// its variables.
    /// </summary>
    /// <exception cref="GuestBootException">The shared files ask for something the guest cannot do.</exception>
    public static DevGuestKeyPlan For(GuestSharedFiles files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var env = files.EncryptedEnv is null ? null : Path.Combine(files.Directory, GuestSharedFolder.EncryptedEnvFile);
        if (!files.KmsEnabled)
        {
            return env is null
                ? new DevGuestKeyPlan([], null)
                : throw new GuestBootException(
                    "the host gave an encrypted env, but the app does not use key provider kms (app-compose kms_enabled / vmm compose --kms): only the KMS holds the key that opens it");
        }

        if (files.KmsUrls.Count == 0)
        {
            throw new GuestBootException($"the app uses key provider kms, but {GuestSharedFolder.SysConfigFile} names no kms_urls (deploy with --kms-url, or set kms_urls in the VMM config)");
        }

        var urls = new List<Uri>(files.KmsUrls.Count);
        foreach (var text in files.KmsUrls)
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme != Uri.UriSchemeHttps)
            {
                throw new GuestBootException($"the KMS URL '{text}' in {GuestSharedFolder.SysConfigFile} is not an https URL (a KMS is reached over RA-TLS)");
            }

            urls.Add(url);
        }

        return new DevGuestKeyPlan(urls, env);
    }
}

/// <summary>
/// The development guest's agent on the SIMULATED TDX, started the way <c>privateml guest boot</c> needs it: the
/// image's simulated platform installed (so the host's <c>kms serve --simulate</c> trusts its quotes), the app measured
/// into RTMR3, keys from the KMS over RA-TLS when the plan names one, the encrypted env opened with the KMS's env key
/// (only <c>allowed_envs</c> kept). Any failure becomes a <see cref="GuestBootException"/> with the reason, and nothing
/// is left running (fail closed: the guest does not start the app).
/// </summary>
public sealed class DevGuestAgent : IAsyncDisposable
{
    /// <summary>The decrypted variable whose value (comma-separated for several) becomes the gateway's bearer tokens.</summary>
    public const string ApiTokensVariable = "PRIVATEML_API_KEY";

    /// <summary>
    /// Bound on each KMS request from the guest: under TCG the first TLS handshakes run through the JIT in software
    /// emulation on a possibly loaded host, so the agent's default (30 s) is too tight. An unreachable KMS still fails
    /// at once (connection refused).
    /// </summary>
    public static readonly TimeSpan KmsRequestTimeout = TimeSpan.FromMinutes(3);

    private DevGuestAgent(WebApplication host, SimulatedTdxDevice device, AgentRuntime runtime)
    {
        Host = host;
        Device = device;
        Runtime = runtime;
    }

    public WebApplication Host { get; }

    public SimulatedTdxDevice Device { get; }

    public AgentRuntime Runtime { get; }

    /// <summary>
    /// SIMULATED: copies the image's simulated platform (<paramref name="imageSimulator"/>) into the agent state, so the
    /// agent's quotes chain to the root the host KMS trusts. Returns that root's SHA-256 fingerprint, or null when the
    /// image carries no platform (the agent then makes a fresh one that no host KMS knows).
    /// </summary>
    public static string? InstallSimulator(string imageSimulator, string agentState)
    {
        ArgumentException.ThrowIfNullOrEmpty(imageSimulator);
        ArgumentException.ThrowIfNullOrEmpty(agentState);
        if (!DevSimulator.Exists(imageSimulator))
        {
            return null;
        }

        try
        {
            DevSimulator.Prepare(imageSimulator).CopyTo(Path.Combine(agentState, SimulatedBoot.SimulatorDirectory));
            return DevSimulator.RootFingerprint(imageSimulator);
        }
        catch (Exception e) when (e is DevImageException or IOException or CryptographicException or JsonException or UnauthorizedAccessException)
        {
            throw new GuestBootException($"the image's SIMULATED TDX platform in {imageSimulator} is unusable: {e.Message}", e);
        }
    }

    /// <summary>
    /// The agent's options for a guest booted from <paramref name="files"/> with <paramref name="plan"/>, its state in
    /// <paramref name="agentState"/> and its socket at <paramref name="socketPath"/>; the host's instance-id seed
    /// (<c>.instance_info</c>), when it gave one, is written into the state first so the measured instance id is the
    /// host's.
    /// </summary>
    public static async Task<AgentOptions> PrepareAsync(GuestSharedFiles files, DevGuestKeyPlan plan, string socketPath, string agentState, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(plan);
        Directory.CreateDirectory(agentState);
        if (files.InstanceIdSeed is { } seed)
        {
            await File.WriteAllBytesAsync(Path.Combine(agentState, "instance-id-seed"), seed, cancellationToken);
        }

        return new AgentOptions
        {
            SocketPath = socketPath,
            TappdSocketPath = null,
            StateDirectory = agentState,
            AppComposePath = Path.Combine(files.Directory, GuestSharedFolder.AppComposeFile),
            AppId = Convert.ToHexStringLower(files.AppId),
            VmConfig = files.VmConfig ?? new AgentOptions().VmConfig,
            KmsUrls = plan.KmsUrls,
            EncryptedEnvPath = plan.EncryptedEnvPath,
        };
    }

    /// <summary>Starts the agent on <paramref name="options"/> (whose KMS URL and env path come from a <see cref="DevGuestKeyPlan"/>) and waits for its boot.</summary>
    /// <exception cref="GuestBootException">The KMS could not be reached or refused, the env did not open, or the agent could not start.</exception>
    public static async Task<DevGuestAgent> StartAsync(AgentOptions options, Action<ILoggingBuilder>? configureLogging, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        SimulatedTdxDevice? device = null;
        WebApplication? host = null;
        try
        {
            host = GuestAgentHost.BuildSimulated(options, out var built, configureServices: services =>
            {
                if (options.KmsUrls.Count > 0)
                {
                    // Registered before the agent's own (TryAdd) choice: the same provider, with the guest's timeout.
                    services.AddSingleton<IKeyProvider>(sp => new KmsKeyProvider(
                        options.KmsUrls, RaTlsCertificates.FromEventLog(sp.GetRequiredService<RuntimeEventLog>()), options.VmConfig,
                        sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<RandomNumberGenerator>(), timeout: KmsRequestTimeout));
                }
            }, configureLogging: configureLogging);
            device = built;
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
            var runtime = host.Services.GetRequiredService<AgentRuntime>();
            await runtime.EnsureBootedAsync().ConfigureAwait(false);
            var started = new DevGuestAgent(host, built, runtime);
            host = null;
            device = null;
            return started;
        }
        catch (KmsClientException e)
        {
            // Several URLs: the message already names each one with its reason and refusal code.
            var code = e.Attempts.Count == 0 && e.RefusalCode is { } c ? $" [{c}]" : "";
            throw new GuestBootException($"no app keys from the KMS at {string.Join(", ", options.KmsUrls)}: {e.Message}{code}", e);
        }
        catch (AttestationException e)
        {
            throw new GuestBootException($"the encrypted env could not be opened: {e.Message} [{e.Code}]", e);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or ArgumentException
            or HttpRequestException or CryptographicException or JsonException or InvalidDataException)
        {
            throw new GuestBootException($"the agent could not start: {e.Message}", e);
        }
        finally
        {
            if (host is not null)
            {
                await host.DisposeAsync().ConfigureAwait(false);
            }

            device?.Dispose();
        }
    }

    /// <summary>The names of the decrypted variables (never their values), in ordinal order.</summary>
    public IReadOnlyList<string> EnvNames => [.. Runtime.DecryptedEnv.Select(v => v.Key).Order(StringComparer.Ordinal)];

    /// <summary>The gateway's bearer tokens: <see cref="ApiTokensVariable"/>'s value split at commas; empty when the env has none.</summary>
    public IReadOnlyList<string> ApiTokens() => Tokens(Runtime.DecryptedEnv);

    /// <summary>The bearer tokens in <paramref name="env"/>'s <see cref="ApiTokensVariable"/> (comma-separated, trimmed, empty entries dropped).</summary>
    public static IReadOnlyList<string> Tokens(IEnumerable<EnvVariable> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        return [.. env.Where(v => v.Key == ApiTokensVariable)
            .SelectMany(v => v.Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))];
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await Host.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            Device.Dispose();
        }
    }
}
