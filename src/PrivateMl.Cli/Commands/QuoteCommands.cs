using System.CommandLine;

namespace PrivateMl.Cli.Commands;

internal static class QuoteCommands
{
    public static Command Create()
    {
        // Scaffolding: subcommands are added by the part that owns them.
        var command = new Command("quote", "Parse and verify Intel DCAP quotes");
        return command;
    }
}
