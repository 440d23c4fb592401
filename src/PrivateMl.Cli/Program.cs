using System.CommandLine;
using PrivateMl.Cli.Commands;

namespace PrivateMl.Cli;

public static class Program
{
    public static int Main(string[] args) => BuildRoot().Parse(args).Invoke();

    /// <summary>Each concern contributes its own commands from its own file under Commands/.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("privateml — Private ML SDK for .NET: confidential LLM nodes you can verify offline");
        root.Subcommands.Add(QuoteCommands.Create());
        root.Subcommands.Add(CollateralCommands.Create());
        root.Subcommands.Add(AgentCommand.Create());
        root.Subcommands.Add(SimulatorCommands.Create());
        root.Subcommands.Add(ServeCommand.Create());
        return root;
    }
}
