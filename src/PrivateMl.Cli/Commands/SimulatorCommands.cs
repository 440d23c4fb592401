using System.CommandLine;

namespace PrivateMl.Cli.Commands;

internal static class SimulatorCommands
{
    public static Command Create()
    {
        // Scaffolding: subcommands are added by the part that owns them.
        var command = new Command("simulator", "The software TDX simulator (state, collateral, PCCS routes)");
        return command;
    }
}
