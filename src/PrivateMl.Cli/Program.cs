using System.CommandLine;
using PrivateMl.Cli.Commands;

namespace PrivateMl.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        var parse = BuildRoot().Parse(args);
        if (ServeCommand.WantsInlineIo(parse) && Environment.GetEnvironmentVariable(ServeCommand.InlineCompletionsVariable) is null)
        {
            // Read by the runtime when this process first uses a socket, which no command has done yet.
            Environment.SetEnvironmentVariable(ServeCommand.InlineCompletionsVariable, "1");
        }

        var configuration = new InvocationConfiguration();
        if (ServeCommand.TerminationGrace(parse) is { } grace)
        {
            configuration.ProcessTerminationTimeout = grace;
        }

        return Invoke(parse, configuration);
    }

    /// <summary>Runs a parsed command line; a parse error (missing argument, unknown option) exits 2, not 1 ("rejected").</summary>
    public static int Invoke(ParseResult parse, InvocationConfiguration? configuration = null)
    {
        var exit = parse.Invoke(configuration);
        return parse.Errors.Count > 0 ? ExitCodes.UsageOrInput : exit;
    }

    /// <summary>Each concern contributes its own commands from its own file under Commands/.</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("privateml — Private ML SDK for .NET: confidential LLM nodes you can verify offline");
        root.Subcommands.Add(QuoteCommands.Create());
        root.Subcommands.Add(CollateralCommands.Create());
        root.Subcommands.Add(AgentCommand.Create());
        root.Subcommands.Add(SimulatorCommands.Create());
        root.Subcommands.Add(GpuCommands.Create());
        root.Subcommands.Add(VerifyCommand.Create());
        root.Subcommands.Add(ChatCommand.Create());
        root.Subcommands.Add(ReceiptCommands.Create());
        root.Subcommands.Add(ModelCommands.Create());
        root.Subcommands.Add(UpCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(KmsCommands.Create());
        root.Subcommands.Add(EnvCommands.Create());
        root.Subcommands.Add(VmmCommands.Create());
        root.Subcommands.Add(GuestCommands.Create());
        return root;
    }
}
