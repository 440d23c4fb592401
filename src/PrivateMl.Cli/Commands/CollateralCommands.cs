using System.CommandLine;

namespace PrivateMl.Cli.Commands;

internal static class CollateralCommands
{
    public static Command Create()
    {
        // Scaffolding: subcommands are added by the part that owns them.
        var command = new Command("collateral", "Fetch and bundle DCAP collateral");
        return command;
    }
}
