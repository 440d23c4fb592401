using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace PrivateMl.Cli.Tests;

/// <summary>
/// <c>privateml chat --e2ee aci</c> and <c>--e2ee ehbp</c> against a node started by <c>privateml up</c> (both as child processes of the built
/// CLI), through a TCP relay on loopback that records every byte between client and gateway: streaming and
/// non-streaming chats verify, and the recording holds neither the prompt nor the answer.
/// </summary>
public sealed partial class UpCommandTests
{
    private const string SecretPrompt = "what do okapis eat at midnight";

    [Theory]
    [InlineData("aci")]
    [InlineData("ehbp")]
    public async Task Chat_e2ee_through_up_streams_and_not_and_the_loopback_capture_holds_no_plaintext(string mode)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "needs Unix sockets");
        var ct = TestContext.Current.CancellationToken;
        var state = Directory.CreateTempSubdirectory("pml-up-e2ee-");
        var (up, printed, ready) = StartUp(["up", "--port", "0", "--state", state.FullName]);
        using var _ = up;
        string Printed() => printed();

        try
        {
            await ready.WaitAsync(Patience, ct);
            var banner = Printed();
            var url = new Uri(UrlLine().Match(banner).Groups["url"].Value);
            var model = UrlLine().Match(banner).Groups["model"].Value;
            var verifyArgs = VerifyLine().Match(banner).Groups[1].Value.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[3..];
            await using var relay = new PrivateMl.Testing.LoopbackCapture(new Uri($"http://127.0.0.1:{url.Port}/"));
            var relayed = $"http://127.0.0.1:{relay.BaseAddress.Port}";

            foreach (var stream in new[] { true, false })
            {
                string[] args = ["chat", relayed, SecretPrompt, "--e2ee", mode, "--model", model, .. verifyArgs, .. stream ? Array.Empty<string>() : ["--no-stream"]];
                var (exit, stdout, stderr) = await RunAsync(Cli(args), ct);
                Assert.True(exit == ExitCodes.Accepted, $"chat --e2ee {mode} (stream {stream}) exited {exit}\n{stdout}\n{stderr}\n--- node ---\n{Printed()}");
                Assert.Contains(mode == "aci" ? "VERIFIED: end-to-end encrypted (x25519-aes-256-gcm-hkdf-sha256)" : "VERIFIED: end-to-end encrypted (EHBP)", stdout, StringComparison.Ordinal);
                // The demo model samples at random (temperature 1, a fresh seed per request): its answer may be empty, one
                // word or several lines, so nothing below depends on what it said. The answer is everything between the
                // "node attested" line and the check lines.
                var answer = AnswerOf(stdout);

                // The exchange of the completion itself (the CLI is sequential: report, completion, signature).
                var all = relay.Captured();
                var start = all.LastIndexOf("POST /v1/chat/completions", StringComparison.Ordinal);
                Assert.True(start >= 0, "no completion request was captured");
                var end = all.IndexOf("GET /v1/signature/", start, StringComparison.Ordinal);
                var capture = end < 0 ? all[start..] : all[start..end];
                Assert.Contains(mode == "aci" ? "X-E2EE-Version: 2" : "Ehbp-Encapsulated-Key: ", capture, StringComparison.OrdinalIgnoreCase);
                if (mode == "ehbp")
                {
                    // Whole bodies are sealed: no JSON or SSE framing of a completion crosses the link in clear.
                    Assert.Contains("Ehbp-Response-Nonce: ", capture, StringComparison.OrdinalIgnoreCase);
                    foreach (var marker in new[] { "\"messages\"", "\"choices\"", "data: ", "chat.completion" })
                    {
                        Assert.DoesNotContain(marker, capture, StringComparison.Ordinal);
                    }
                }
                else
                {
                    // Field encryption: every content field on the link, prompt and answer alike, is a v2 ciphertext.
                    var fields = ContentField().Matches(capture).Select(m => m.Groups[1].Value).Where(v => v.Length > 0).ToList();
                    Assert.NotEmpty(fields);
                    Assert.All(fields, v => Assert.Matches("^[0-9a-f]{120,}$", v));
                }

                Assert.DoesNotContain("okapis", all, StringComparison.Ordinal);
                Assert.DoesNotContain("okapis", capture, StringComparison.Ordinal);
                // Whatever the model said, none of it crossed in clear: its whole text, and each pair of its words (the
                // demo model's words are vocabulary pieces that may occur anywhere, e.g. "private"; pairs do not).
                if (answer.Trim().Length >= 8)
                {
                    Assert.DoesNotContain(answer.Trim(), capture, StringComparison.Ordinal);
                }

                var words = answer.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
                foreach (var pair in words.Zip(words.Skip(1), (a, b) => a + " " + b).Where(p => p.Length >= 8))
                {
                    Assert.DoesNotContain(pair, capture, StringComparison.Ordinal);
                }
            }

            // The same question without --e2ee: the capture does carry it (the recorder would see plaintext).
            var (plainExit, plainOut, _) = await RunAsync(Cli(["chat", relayed, SecretPrompt, "--model", model, "--no-stream", .. verifyArgs]), ct);
            Assert.True(plainExit == ExitCodes.Accepted, plainOut);
            Assert.Contains("okapis", relay.Captured(), StringComparison.Ordinal);

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

    /// <summary>The answer text <c>privateml chat</c> printed: the lines after "✔ node attested" up to the blank line before the checks.</summary>
    private static string AnswerOf(string stdout)
    {
        var lines = stdout.Split('\n');
        var first = Array.FindIndex(lines, l => l.StartsWith("✔ node attested", StringComparison.Ordinal));
        Assert.True(first >= 0, stdout);
        var checks = Array.FindIndex(lines, first + 1, l => l.StartsWith("✔ ", StringComparison.Ordinal) || l.StartsWith("✘ ", StringComparison.Ordinal) || l.StartsWith("VERIFIED", StringComparison.Ordinal));
        return string.Join('\n', lines[(first + 1)..(checks < 0 ? lines.Length : checks)]);
    }

    [GeneratedRegex("\"content\":\"([^\"]*)\"")]
    private static partial Regex ContentField();

    /// <summary>Starts <c>privateml</c> with <paramref name="arguments"/> (an <c>up</c> command), collecting its output; ready when it prints the Ctrl-C line.</summary>
    private static (Process Up, Func<string> Printed, Task Ready) StartUp(IEnumerable<string> arguments)
    {
        var up = Start(Cli(arguments));
        var output = new StringBuilder();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        up.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("privateml up ended its output before it was ready"));
            }
            else if (e.Data.StartsWith("Ctrl-C stops the node", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        up.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        up.BeginOutputReadLine();
        up.BeginErrorReadLine();
        return (up, () =>
        {
            lock (output)
            {
                return output.ToString();
            }
        }, ready.Task);
    }
}
