using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Agent.Hosting;

/// <summary>How the agent, the gateway and the KMS start their web hosts.</summary>
public static class ServiceHost
{
    /// <summary>
    /// A host builder with no configuration sources, with <paramref name="configureLogging"/> applied, or one-line
    /// console logging when it is null.
    /// </summary>
    /// <remarks>
    /// Everything these services do comes from their typed options. The default builders would also read
    /// appsettings.json from the working directory (a <c>Kestrel</c> section there replaces the listen addresses),
    /// <c>ASPNETCORE_*</c>/<c>DOTNET_*</c> variables (<c>ASPNETCORE_ENVIRONMENT=Development</c> turns on the
    /// developer exception page, which sends stack traces to clients) and the command line, and would watch the
    /// working directory recursively for changes: one inotify watch per subdirectory, and a thread woken by every
    /// file written beneath it.
    /// </remarks>
    public static WebApplicationBuilder CreateBuilder(Action<ILoggingBuilder>? configureLogging)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            Args = [],
            EnvironmentName = Environments.Production,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        if (configureLogging is not null)
        {
            configureLogging(builder.Logging);
        }
        else
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        }

        return builder;
    }
}
