using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Hosting;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Attestation;
using PrivateMl.Gateway.E2ee.Aci;
using PrivateMl.Gateway.E2ee.Ehbp;
using PrivateMl.Gateway.Keyset;
using PrivateMl.Gateway.Operations;
using PrivateMl.Gateway.Proxy;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Signing;
using PrivateMl.Inference;
using PrivateMl.Tee.Gpu;

namespace PrivateMl.Gateway;

/// <summary>
/// Builds the attesting gateway as a web host. Typical use:
/// <code>
/// await using var app = GatewayHost.Build(options, backend, agentClient);
/// await app.StartAsync(ct);   // keys are made (or derived through the agent) during start
/// </code>
/// Services registered in <c>configureServices</c> win over the defaults (TimeProvider.System, RandomNumberGenerator,
/// the signature store, no <see cref="IGpuEvidenceSource"/>).
/// </summary>
public static class GatewayHost
{
    public static WebApplication Build(
        GatewayOptions options,
        IInferenceBackend backend,
        IDstackAgentClient? agent,
        Action<IServiceCollection>? configureServices = null,
        Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backend);
        options.Validate();
        if (options.KeySource == SigningKeySource.Agent && agent is null)
        {
            throw new ArgumentException("agent-derived keys need an agent client", nameof(agent));
        }

        var builder = ServiceHost.CreateBuilder(configureLogging);
        if (configureLogging is null)
        {
            // ASP.NET Core's hosting and routing write two to four Information lines per request ("Request
            // starting", "Executing endpoint", …): console work on every completion on top of the relay's own.
            // The gateway logs what matters itself (GatewayLog); startup lines (Microsoft.Hosting.Lifetime) stay.
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        }

        builder.WebHost.UseUrls([.. options.ListenUrls]);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = OversizeBody.KestrelCap(options.MaxRequestBodyBytes);
            kestrel.Limits.MinResponseDataRate = null;
        });
        builder.Services.Configure<SocketTransportOptions>(sockets => sockets.UnsafePreferInlineScheduling = options.InlineSocketScheduling);

        // The drain delay runs inside the host's stop, so the deadline covers both it and the completions in flight.
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.DrainDelay + options.ShutdownTimeout);

        configureServices?.Invoke(builder.Services);
        builder.Services.AddPrivateMlGateway(options, backend, agent);
        var app = builder.Build();
        GatewayEndpoints.Map(app);
        return app;
    }

    /// <summary>The base addresses the started host listens on (ports resolved).</summary>
    public static IReadOnlyList<Uri> Addresses(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var feature = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>();
        return feature?.Addresses.Select(a => new Uri(a)).ToArray() ?? [];
    }
}

/// <summary>DI registration of the gateway.</summary>
public static class GatewayServiceCollectionExtensions
{
    public static IServiceCollection AddPrivateMlGateway(this IServiceCollection services, GatewayOptions options, IInferenceBackend backend, IDstackAgentClient? agent)
    {
        ArgumentNullException.ThrowIfNull(options);
        services.AddSingleton(options);
        services.AddSingleton(backend);
        if (agent is not null)
        {
            services.TryAddSingleton(agent);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(_ => RandomNumberGenerator.Create());
        services.TryAddSingleton<ISignatureStore>(sp =>
        {
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("PrivateMl.Gateway");
            if (!string.IsNullOrEmpty(options.RedisConnection))
            {
                GatewayLog.Store(logger, "redis");
                return RedisSignatureStore.Connect(options);
            }

            var bound = MemorySignatureStore.MemoryBound(options);
            GatewayLog.Store(logger, $"memory (ttl {options.SignatureTtl}, at most {options.MaxStoredSignatures} signatures, about {bound / (1 << 20)} MiB when full)");
            var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            if (bound > available / 2)
            {
                GatewayLog.StoreMayNotFit(logger, bound / (1 << 20), available / (1 << 20));
            }

            return new MemorySignatureStore(options, sp.GetRequiredService<TimeProvider>());
        });
        services.AddSingleton<SigningKeyHolder>();
        services.AddMetrics();
        services.AddSingleton<GatewayKeysetHolder>();
        services.TryAddSingleton<IAciReplayStore>(sp => string.IsNullOrEmpty(options.RedisConnection)
            ? new AciReplayCache(sp.GetRequiredService<TimeProvider>())
            : RedisAciReplayStore.Connect(options.RedisConnection, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<AciE2eeMiddleware>();
        services.AddSingleton<GatewayMetrics>();
        services.AddSingleton(sp => new PrometheusTextExporter(sp.GetRequiredService<GatewayMetrics>().InstanceId));
        // OpenTelemetry's hosted service (which builds the meter provider) is registered before GatewayStartup, so the
        // provider listens by the time GatewayStartup publishes the counters.
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(GatewayMetrics.MeterName)
            .AddReader(sp => sp.GetRequiredService<PrometheusTextExporter>().Reader));
        services.AddSingleton<CompletionRelay>();
        services.AddSingleton(sp => new AttestationReportBuilder(
            sp.GetRequiredService<SigningKeyHolder>(),
            sp.GetRequiredService<GatewayKeysetHolder>(),
            sp.GetService<IDstackAgentClient>(),
            sp.GetService<IGpuEvidenceSource>(),
            sp.GetRequiredService<GatewayMetrics>(),
            sp.GetRequiredService<RandomNumberGenerator>(),
            options.Peers.Count == 0 ? null : new PeerReports(
                new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2) }) { Timeout = Timeout.InfiniteTimeSpan },
                options)));
        services.AddHostedService<GatewayStartup>();
        services.AddHostedService<KeysetRenewal>();
        services.AddSingleton<GatewayShutdown>();
        services.AddHostedService(sp => sp.GetRequiredService<GatewayShutdown>());
        services.AddSingleton<EhbpKeyHolder>();
        services.AddSingleton<EhbpMiddleware>();
        services.AddSingleton<IKeysetContributor, EhbpKeysetContributor>();
        return services;
    }
}

/// <summary>Makes or derives the signing keys when the host starts; the host does not start without them.</summary>
internal sealed class GatewayStartup(
    GatewayOptions options,
    SigningKeyHolder holder,
    GatewayKeysetHolder keysetHolder,
    IEnumerable<IKeysetContributor> contributors,
    TimeProvider time,
    RandomNumberGenerator random,
    ISignatureStore store,
    GatewayMetrics metrics,
    ILogger<GatewayStartup> logger,
    IDstackAgentClient? agent = null) : IHostedService, IAsyncDisposable
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _ = store;
        metrics.Publish();
        var keys = options.KeySource == SigningKeySource.Agent
            ? await GatewaySigningKeys.DeriveAsync(agent!, options.KeyPathPrefix, cancellationToken)
            : GatewaySigningKeys.CreateRandom(random);
        var context = new KeysetContext(options.KeySource, options.KeyPathPrefix, agent, random);
        var keyset = await GatewayKeyset.BuildAsync(options, keys, context, contributors, time.GetUtcNow(), cancellationToken);
        keysetHolder.Set(keyset);
        holder.Set(keys);
        GatewayLog.KeysReady(logger, keys.Source, keys.EcdsaKey.Address, keys.Ed25519Key.Address);
        GatewayLog.KeysetReady(logger, keyset.Public.Digest, keyset.Public.E2eePublicKeys.Count);
        if (PrivateMl.E2ee.Aci.AciSuites.Secp256k1Implementation != "native")
        {
            GatewayLog.Secp256k1Managed(logger);
        }

        if (options.InlineSocketScheduling)
        {
            GatewayLog.InlineIo(logger, Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") == "1");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public ValueTask DisposeAsync()
    {
        if (holder.IsReady)
        {
            holder.Keys.Dispose();
        }

        if (keysetHolder.IsReady)
        {
            keysetHolder.Keyset.Dispose();
        }

        return ValueTask.CompletedTask;
    }
}
