using System.CommandLine;

namespace PrivateMl.Cli.Commands;

internal static class AgentCommand
{
    public static Command Create()
    {
        // Scaffolding: subcommands are added by the part that owns them.
        var command = new Command("agent", "Run the dstack-compatible guest agent");
        return command;
    }
}
