using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Testing;

/// <summary>
/// The small fake HTTP servers of the tests (an upstream model, a KMS endpoint, a PCCS, …): Kestrel on 127.0.0.1 at a
/// port the OS picks when it binds (so no port is guessed or raced), with logging off.
/// </summary>
public static class LoopbackServer
{
    /// <summary>Builds a server, lets <paramref name="map"/> add its routes (or one handler), and starts it.</summary>
    public static async Task<WebApplication> StartAsync(Action<WebApplication> map, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(map);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        try
        {
            map(app);
            await app.StartAsync(cancellationToken);
            return app;
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a server whose <paramref name="handler"/> answers every request.</summary>
    public static Task<WebApplication> ServeAsync(RequestDelegate handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return StartAsync(app => app.Run(handler), cancellationToken);
    }

    /// <summary>Where a started server listens: <c>http://127.0.0.1:&lt;port&gt;/</c>.</summary>
    public static Uri BaseAddress(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return new Uri(app.Urls.First());
    }
}
