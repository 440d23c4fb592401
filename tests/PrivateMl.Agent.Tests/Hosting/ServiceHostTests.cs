using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using PrivateMl.Agent.Hosting;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>The web-host builder the agent, the gateway and the KMS share.</summary>
public sealed class ServiceHostTests
{
    [Fact]
    public async Task WithoutConfiguration_LogsToTheConsoleOnly()
    {
        await using var app = ServiceHost.CreateBuilder(null).Build();

        var provider = Assert.Single(app.Services.GetServices<ILoggerProvider>());
        Assert.IsType<ConsoleLoggerProvider>(provider);
    }

    [Fact]
    public async Task WithConfiguration_ReplacesTheDefaults()
    {
        var called = 0;
        await using var app = ServiceHost.CreateBuilder(logging => called++).Build();

        Assert.Equal(1, called);
        Assert.Empty(app.Services.GetServices<ILoggerProvider>());
    }

    [Fact]
    public async Task ReadsNoConfiguration_FromFilesTheEnvironmentOrTheCommandLine()
    {
        await using var app = ServiceHost.CreateBuilder(null).Build();

        // A Kestrel section in a stray appsettings.json would open listeners, ASPNETCORE_ENVIRONMENT=Development would
        // send stack traces to clients, and a JSON source would watch the working directory tree.
        var providers = ((IConfigurationRoot)app.Configuration).Providers.ToList();
        Assert.DoesNotContain(providers, p => p is FileConfigurationProvider or EnvironmentVariablesConfigurationProvider or CommandLineConfigurationProvider);
        Assert.Equal(Environments.Production, app.Environment.EnvironmentName);
        Assert.Equal(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory), Path.TrimEndingDirectorySeparator(app.Environment.ContentRootPath));
    }

    [Fact]
    public async Task ServesMappedRoutes_OnKestrel()
    {
        var builder = ServiceHost.CreateBuilder(logging => { });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapGet("/ping", () => "pong");
        await app.StartAsync(TestContext.Current.CancellationToken);
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };

        Assert.Equal("pong", await client.GetStringAsync("/ping", TestContext.Current.CancellationToken));
        await app.StopAsync(TestContext.Current.CancellationToken);
    }
}
