using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Agent.Hosting;

/// <summary>How the agent, the gateway and the KMS start their web hosts.</summary>
public static class ServiceHost
{
    /// <summary>
    /// A slim host builder that ignores the process's command line, with the default log providers removed and
    /// <paramref name="configureLogging"/> applied, or one-line console logging when it is null.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(Action<ILoggingBuilder>? configureLogging)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
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
