using Microsoft.Extensions.DependencyInjection;
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
}
