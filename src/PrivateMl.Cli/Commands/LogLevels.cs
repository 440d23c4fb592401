using System.CommandLine;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>--log-level</c> for the commands that run a service (<c>serve</c>, <c>agent</c>, <c>kms serve</c>): the hosts read
/// no <c>Logging__</c> variables, so the level is an option like every other setting.
/// </summary>
internal static class LogLevels
{
    public static Option<string> Option() => new Option<string>("--log-level")
    {
        Description = "Least severe log entries written: trace, debug, information, warning, error, critical or none (prompts and secrets are never logged at any level)",
        DefaultValueFactory = _ => "information",
    }.AcceptOnlyFromAmong("trace", "debug", "information", "warning", "error", "critical", "none");

    public static LogLevel Parse(string value) => Enum.Parse<LogLevel>(value, ignoreCase: true);

    /// <summary>One line per console log entry, at <paramref name="level"/> and above.</summary>
    public static Action<ILoggingBuilder> Console(LogLevel level) => logging => logging
        .AddSimpleConsole(o => o.SingleLine = true)
        .SetMinimumLevel(level);
}
