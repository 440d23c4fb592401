using System.CommandLine;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client.Kms;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml kms list|add PUBKEY|remove PUBKEY [--trust-file FILE]</c>: the client's trusted KMS root keys (33-byte
/// compressed secp256k1, a KMS's <c>GetMeta.k256_pubkey</c>), as dstack's <c>vmm-cli.py kms</c>. <c>privateml env
/// encrypt</c> refuses env keys not signed by one of them. The <c>kms</c> command itself adds these subcommands.
/// </summary>
public static class KmsTrustCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return ListCommand();
        yield return ChangeCommand("add", "Trust a KMS root key (66 hex characters, compressed secp256k1)", add: true);
        yield return ChangeCommand("remove", "Stop trusting a KMS root key", add: false);
    }

    private static Command ListCommand()
    {
        var trustFile = EnvCommands.TrustFileOption();
        var command = new Command("list", "List the trusted KMS root keys") { trustFile };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var store = new TrustedKmsKeyStore(parse.GetValue(trustFile) ?? TrustedKmsKeyStore.DefaultPath);
            try
            {
                var keys = store.List();
                error.WriteLine($"{keys.Count} trusted KMS key(s) in {store.Path}");
                foreach (var key in keys)
                {
                    output.WriteLine(key);
                }

                return ExitCodes.Accepted;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or AttestationException)
            {
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }

    private static Command ChangeCommand(string name, string description, bool add)
    {
        var key = new Argument<string>("PUBKEY") { Description = "Compressed secp256k1 public key, 66 hex characters (0x optional)" };
        var trustFile = EnvCommands.TrustFileOption();
        var command = new Command(name, description) { key, trustFile };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var store = new TrustedKmsKeyStore(parse.GetValue(trustFile) ?? TrustedKmsKeyStore.DefaultPath);
            var publicKey = parse.GetValue(key)!;
            try
            {
                if (add)
                {
                    var added = store.Add(publicKey);
                    output.WriteLine(added ? $"trusted {TrustedKmsKeyStore.Normalize(publicKey)} ({store.Path})" : "already trusted");
                    return ExitCodes.Accepted;
                }

                if (store.Remove(publicKey))
                {
                    output.WriteLine($"removed {publicKey} ({store.Path})");
                    return ExitCodes.Accepted;
                }

                error.WriteLine($"{publicKey} is not in {store.Path}");
                return ExitCodes.Rejected;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or AttestationException or ArgumentException)
            {
                error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }
}
