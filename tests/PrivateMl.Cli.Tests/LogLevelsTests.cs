using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Hosting;
using PrivateMl.Cli.Commands;

namespace PrivateMl.Cli.Tests;

/// <summary><c>--log-level</c> on the commands that run a service.</summary>
public sealed class LogLevelsTests
{
    [Theory]
    [InlineData("information", LogLevel.Information, LogLevel.Debug)]
    [InlineData("Warning", LogLevel.Warning, LogLevel.Information)]
    [InlineData("trace", LogLevel.Trace, LogLevel.None)]
    public async Task Console_WritesTheLevelAndAbove_Only(string given, LogLevel written, LogLevel dropped)
    {
        await using var app = ServiceHost.CreateBuilder(LogLevels.Console(LogLevels.Parse(given))).Build();

        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PrivateMl.Kms");
        Assert.True(logger.IsEnabled(written));
        Assert.False(logger.IsEnabled(dropped));
    }

    [Theory]
    [InlineData("agent --simulate")]
    [InlineData("kms serve")]
    [InlineData("serve --upstream http://127.0.0.1:1 --no-agent")]
    public void AnUnknownLevel_IsAUsageError_OnEveryServiceCommand(string command)
    {
        var error = new StringWriter();

        var code = Program.Invoke(Program.BuildRoot().Parse([.. command.Split(' '), "--log-level", "verbose"]), new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
        Assert.Contains("verbose", error.ToString(), StringComparison.Ordinal);
    }
}
