using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using PrivateMl.Testing;

namespace PrivateMl.Cli.Tests;

/// <summary>
/// Issue 6's first acceptance item, end to end and as a user meets it: the README's first command
/// (<c>dotnet run --project src/PrivateMl.Cli -- up</c>) runs as a child process of the built CLI; the unmodified npm <c>openai</c> client chats with it
/// (tests/interop/gateway/up-chat.js), streaming and not, and ethers/tweetnacl check each answer's signature against
/// the addresses <c>up</c> printed; the verify command <c>up</c> printed accepts the node, and rejects it without
/// <c>--allow-simulated</c>; SIGTERM stops it with exit 0 and removes its agent socket. Skipped when node or the
/// script's node_modules are missing, unless PRIVATEML_REQUIRE_SHARED=1.
/// </summary>
public sealed partial class UpCommandTests
{
    private const int SigTerm = 15;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Up_ServesSignedModelTokensToNpmOpenAi_PassesItsOwnVerifyCommand_AndStopsCleanlyOnSigterm()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "needs POSIX signals and Unix sockets");
        var interop = Path.Combine(SharedTestData.RepositoryRoot, "tests", "interop", "gateway");
        var node = new[] { "/usr/bin/node", "/usr/local/bin/node" }.FirstOrDefault(File.Exists);
        if (node is null || !Directory.Exists(Path.Combine(interop, "node_modules", "openai")))
        {
            var reason = $"node or {interop}/node_modules is missing (run npm install there)";
            if (Environment.GetEnvironmentVariable("PRIVATEML_REQUIRE_SHARED") == "1")
            {
                Assert.Fail(reason);
            }

            Assert.Skip(reason);
        }

        // The README's first command, run from the built CLI, on a free port and a fresh state directory.
        var readme = await File.ReadAllLinesAsync(Path.Combine(SharedTestData.RepositoryRoot, "README.md"), TestContext.Current.CancellationToken);
        const string DotnetRun = "dotnet run --project src/PrivateMl.Cli -- ";
        var first = readme.FirstOrDefault(line => line.StartsWith(DotnetRun, StringComparison.Ordinal));
        Assert.NotNull(first);
        Assert.Equal(DotnetRun + "up", first);
        string[] readmeArgs = [.. first[DotnetRun.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];

        var ct = TestContext.Current.CancellationToken;
        var state = Directory.CreateTempSubdirectory("pml-up-");
        var (up, printed, ready) = StartUp([.. readmeArgs, "--port", "0", "--state", state.FullName]);
        using var _ = up;
        string Printed() => printed();

        try
        {
            try
            {
                await ready.WaitAsync(Patience, ct);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                Assert.Fail($"privateml up did not come up: {e.Message}\n{Printed()}");
            }

            var banner = Printed();
            var urlLine = UrlLine().Match(banner);
            Assert.True(urlLine.Success, banner);
            var url = urlLine.Groups["url"].Value;
            var model = urlLine.Groups["model"].Value;
            var ecdsaAddress = EcdsaLine().Match(banner).Groups[1].Value;
            var ed25519Address = Ed25519Line().Match(banner).Groups[1].Value;
            var socket = SocketLine().Match(banner).Groups[1].Value.Trim();
            var verifyLine = VerifyLine().Match(banner).Groups[1].Value.Trim();
            Assert.Matches("^0x[0-9a-fA-F]{40}$", ecdsaAddress);
            Assert.Matches("^[0-9a-f]{64}$", ed25519Address);
            Assert.StartsWith(state.FullName, socket, StringComparison.Ordinal);
            Assert.True(File.Exists(socket), $"the agent socket {socket} is missing while the node runs");

            // (1) The npm openai client, streaming and not; the signatures checked by ethers and tweetnacl.
            var chat = new ProcessStartInfo(node, [Path.Combine(interop, "up-chat.js")]) { WorkingDirectory = interop };
            chat.Environment["GATEWAY_URL"] = url;
            chat.Environment["GATEWAY_MODEL"] = model;
            var (chatExit, chatOut, chatErr) = await RunAsync(chat, ct);
            Assert.True(chatExit == 0, $"up-chat.js exited {chatExit}\n{chatOut}\n{chatErr}\n--- node output ---\n{Printed()}");
            using var facts = JsonDocument.Parse(chatOut);
            var nonStreaming = facts.RootElement.GetProperty("nonStreaming");
            var streaming = facts.RootElement.GetProperty("streaming");
            foreach (var answer in new[] { nonStreaming, streaming })
            {
                Assert.NotEqual(string.Empty, answer.GetProperty("content").GetString());
                Assert.InRange(answer.GetProperty("completionTokens").GetInt32(), 1, 16);
                Assert.Equal(1, answer.GetProperty("requestExchanges").GetInt32());
                var exchanged = $"{answer.GetProperty("sentSha256").GetString()}:{answer.GetProperty("receivedSha256").GetString()}";
                Assert.Equal(exchanged, answer.GetProperty("ecdsaText").GetString());
                Assert.Equal(exchanged, answer.GetProperty("ed25519Text").GetString());
                Assert.Equal(ecdsaAddress, answer.GetProperty("ecdsaRecovered").GetString());
                Assert.Equal(ecdsaAddress, answer.GetProperty("ecdsaSigningAddress").GetString());
                Assert.NotEqual(ecdsaAddress, answer.GetProperty("ecdsaRecoveredFromTamperedText").GetString());
                Assert.Equal(ed25519Address, answer.GetProperty("ed25519SigningAddress").GetString());
                Assert.True(answer.GetProperty("ed25519Valid").GetBoolean(), "tweetnacl rejected the Ed25519 signature");
            }

            Assert.Equal(model, nonStreaming.GetProperty("model").GetString());
            Assert.True(streaming.GetProperty("contentChunks").GetInt32() >= 1);
            Assert.True(streaming.GetProperty("endsWithDone").GetBoolean(), "the stream did not end with data: [DONE]");
            Assert.NotEqual(nonStreaming.GetProperty("id").GetString(), streaming.GetProperty("id").GetString());

            // (2) The verify command up printed, as printed (collateral from the node's simulated PCCS); and without
            // --allow-simulated.
            Assert.StartsWith($"privateml verify {url.TrimEnd('/')} --allow-simulated", verifyLine, StringComparison.Ordinal);
            var verifyArgs = verifyLine.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..];
            var (verifyExit, verifyOut, verifyErr) = await RunAsync(Cli(verifyArgs), ct);
            Assert.True(verifyExit == ExitCodes.Accepted, $"verify exited {verifyExit}\n{verifyOut}\n{verifyErr}");
            Assert.Contains($"TRUSTED (SIMULATED): every check passed", verifyOut, StringComparison.Ordinal);
            Assert.Contains($"answers signed by {ecdsaAddress}", verifyOut, StringComparison.Ordinal);

            // Without --allow-simulated the default collateral source is Intel PCS; point it at the node's simulated
            // PCCS so the refusal is the policy's, not a fetch failure.
            var strictArgs = verifyArgs.Where(a => a != "--allow-simulated").Concat(["--pccs", url + "/pccs"]).ToArray();
            var (strictExit, strictOut, strictErr) = await RunAsync(Cli(strictArgs), ct);
            Assert.True(strictExit == ExitCodes.Rejected, $"verify without --allow-simulated exited {strictExit}\n{strictOut}\n{strictErr}");
            Assert.Contains("✘ policy.simulated: SIMULATED evidence: signed under a simulated root", strictOut, StringComparison.Ordinal);
            Assert.Contains("[SimulatedEvidenceNotTrusted]", strictOut, StringComparison.Ordinal);
            Assert.Contains("NOT TRUSTED: 1 check failed (first: policy.simulated)", strictOut, StringComparison.Ordinal);

            // (3) SIGTERM, as a service manager or `docker stop` sends it: a clean exit that removes the socket.
            Assert.Equal(0, Kill(up.Id, SigTerm));
            using (var exited = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                exited.CancelAfter(Patience);
                await up.WaitForExitAsync(exited.Token);
            }

            Assert.True(up.ExitCode == ExitCodes.Accepted, $"privateml up exited {up.ExitCode} on SIGTERM\n{Printed()}");
            Assert.Contains("stopping", Printed(), StringComparison.Ordinal);
            Assert.False(File.Exists(socket), $"the agent socket {socket} is still there after the node stopped");
        }
        finally
        {
            if (!up.HasExited)
            {
                up.Kill(entireProcessTree: true);
            }

            state.Delete(recursive: true);
        }
    }

    /// <summary>The built CLI (privateml.dll beside these tests) run by the dotnet host, as <c>dotnet run</c> would.</summary>
    private static ProcessStartInfo Cli(IEnumerable<string> arguments)
    {
        var cli = Path.Combine(AppContext.BaseDirectory, "privateml.dll");
        Assert.True(File.Exists(cli), $"{cli} is missing: the test project must reference PrivateMl.Cli");
        var start = new ProcessStartInfo(DotnetHost(), [cli, .. arguments])
        {
            WorkingDirectory = Path.GetTempPath(),
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return start;
    }

    private static string DotnetHost()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var beside = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
        return File.Exists(beside) ? beside : "dotnet";
    }

    private static Process Start(ProcessStartInfo start)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.StandardOutputEncoding = Encoding.UTF8;
        start.StandardErrorEncoding = Encoding.UTF8;
        return Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(ProcessStartInfo start, CancellationToken cancellationToken)
    {
        using var process = Start(start);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Patience);
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            return (process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);

    [GeneratedRegex(@"^  url +(?<url>http://127\.0\.0\.1:\d+)/v1 .*model ""(?<model>[^""]+)""", RegexOptions.Multiline)]
    private static partial Regex UrlLine();

    [GeneratedRegex(@"^  signing \(ecdsa\) +(\S+)", RegexOptions.Multiline)]
    private static partial Regex EcdsaLine();

    [GeneratedRegex(@"^  signing \(ed25519\) +(\S+)", RegexOptions.Multiline)]
    private static partial Regex Ed25519Line();

    [GeneratedRegex(@"^  agent socket +(\S+)", RegexOptions.Multiline)]
    private static partial Regex SocketLine();

    [GeneratedRegex(@"^  (privateml verify .*)$", RegexOptions.Multiline)]
    private static partial Regex VerifyLine();
}
