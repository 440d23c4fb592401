using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Protocol;
using PrivateMl.Agent.Runtime;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Simulator;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Agent.Hosting;

/// <summary>
/// Builds the guest agent as a Generic Host (Kestrel on Unix sockets and optionally TCP). Typical use:
/// <code>
/// await using var app = GuestAgentHost.Build(options, device);
/// await app.RunAsync(cancellationToken);   // or StartAsync / StopAsync
/// </code>
/// Services the caller registers in <c>configureServices</c> win over the defaults (TimeProvider.System,
/// RandomNumberGenerator, <see cref="LocalKeyProvider"/> in the state directory, <see cref="RuntimeEventLog"/> with no
/// boot events).
/// </summary>
public static class GuestAgentHost
{
    public static WebApplication Build(
        AgentOptions options,
        ITdxDevice device,
        Action<IServiceCollection>? configureServices = null,
        Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(device);
        options.Validate();

        var builder = ServiceHost.CreateBuilder(configureLogging);

        builder.Services.AddSingleton(device);
        configureServices?.Invoke(builder.Services);
        builder.Services.AddPrivateMlAgent(options);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = OversizeBody.KestrelCap(options.MaxRequestBodyBytes);
            kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            var logger = kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GuestAgentHost));
            if (!string.IsNullOrEmpty(options.SocketPath))
            {
                UnixSocketFile.PrepareForBind(options.SocketPath, logger);
                kestrel.ListenUnixSocket(options.SocketPath, l => Mark(l, ApiSurface.Dstack));
            }

            if (!string.IsNullOrEmpty(options.TappdSocketPath))
            {
                UnixSocketFile.PrepareForBind(options.TappdSocketPath, logger);
                kestrel.ListenUnixSocket(options.TappdSocketPath, l => Mark(l, ApiSurface.Tappd));
            }

            if (options.ListenUrl is { } url)
            {
                if (url.IsLoopback && url.Host == "localhost")
                {
                    kestrel.ListenLocalhost(url.Port, l => Mark(l, ApiSurface.Both));
                }
                else
                {
                    var address = IPAddress.TryParse(url.Host.Trim('[', ']'), out var ip) ? ip : IPAddress.Any;
                    kestrel.Listen(address, url.Port, l => Mark(l, ApiSurface.Both));
                }
            }
        });

        var app = builder.Build();
        var handler = app.Services.GetRequiredService<AgentRequestHandler>();
        app.Run(handler.HandleAsync);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GuestAgentHost));
            if (device.IsSimulated)
            {
                AgentLog.Simulated(logger, device.ProviderName);
            }

            foreach (var (api, path) in new[] { ("DstackGuest", options.SocketPath), ("Tappd", options.TappdSocketPath) })
            {
                if (!string.IsNullOrEmpty(path))
                {
                    UnixSocketFile.MakeWorldAccessible(path);
                    AgentLog.Listening(logger, api, "unix:" + path);
                }
            }

            if (options.ListenUrl is { } listen)
            {
                AgentLog.Listening(logger, "DstackGuest + Tappd", listen.ToString());
            }
        });
        return app;
    }

    /// <summary>
    /// The agent over the software TDX: the simulator lives in <c>&lt;StateDirectory&gt;/tdx-simulator</c>, the event log
    /// starts with <see cref="SimulatedBoot.BootEvents"/>, and every start is a fresh simulated boot. The device is
    /// registered as a singleton and returned (e.g. for its collateral); the caller disposes it after the host.
    /// </summary>
    public static WebApplication BuildSimulated(
        AgentOptions options,
        out SimulatedTdxDevice device,
        TimeProvider? timeProvider = null,
        Action<IServiceCollection>? configureServices = null,
        Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var clock = timeProvider ?? TimeProvider.System;
        var simulator = SimulatedBoot.OpenDevice(options.StateDirectory, clock);
        device = simulator;
        return Build(options, simulator, services =>
        {
            services.TryAddSingleton(clock);
            services.AddSingleton(simulator);
            services.TryAddSingleton(_ => RuntimeEventLog.Open(
                simulator, new RuntimeEventLogOptions { LogFilePath = null, BootEvents = SimulatedBoot.BootEvents }));
            configureServices?.Invoke(services);
        }, configureLogging);
    }

    private static void Mark(ListenOptions listen, ApiSurface surface)
    {
        listen.Protocols = HttpProtocols.Http1;
        listen.Use(next => connection =>
        {
            connection.Items[AgentRequestHandler.SurfaceItem] = surface;
            return next(connection);
        });
    }
}

/// <summary>DI registration of the agent (for hosts that compose it with other services).</summary>
public static class AgentServiceCollectionExtensions
{
    /// <summary>
    /// Registers the agent's services. An <see cref="ITdxDevice"/> must be registered; <see cref="TimeProvider"/>,
    /// <see cref="RandomNumberGenerator"/>, <see cref="IKeyProvider"/> and <see cref="RuntimeEventLog"/> are
    /// registered only when absent.
    /// </summary>
    public static IServiceCollection AddPrivateMlAgent(this IServiceCollection services, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        services.AddSingleton(options);
        services.AddSingleton<IOptions<AgentOptions>>(Options.Create(options));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(_ => RandomNumberGenerator.Create());
        services.TryAddSingleton<IKeyProvider>(sp => options.KmsUrls.Count > 0
            ? new KmsKeyProvider(
                options.KmsUrls, RaTlsCertificates.FromEventLog(sp.GetRequiredService<RuntimeEventLog>()), options.VmConfig,
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<RandomNumberGenerator>())
            : LocalKeyProvider.OpenOrCreate(
                options.StateDirectory, sp.GetRequiredService<RandomNumberGenerator>(), sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => RuntimeEventLog.Open(
            sp.GetRequiredService<ITdxDevice>(), new RuntimeEventLogOptions { LogFilePath = options.RuntimeEventLogPath }));
        services.AddSingleton<AgentRuntime>();
        services.AddSingleton<GuestApi>();
        services.AddSingleton<AgentRequestHandler>();
        services.AddHostedService<AgentBootService>();
        return services;
    }
}

/// <summary>Runs the boot sequence when the host starts, so a broken setup stops the agent before it serves.</summary>
internal sealed class AgentBootService(AgentRuntime runtime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => runtime.EnsureBootedAsync().WaitAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
