using System.Diagnostics;
using PrivateMl.Testing;

namespace PrivateMl.Client.Tests.Html;

/// <summary>
/// Debian's <c>/usr/bin/chromium</c>, run headless on one local file with a fresh profile and everything that talks
/// to the network turned off: it returns the DOM after rendering (<c>--dump-dom</c>) and writes a screenshot. When the
/// binary is absent the test is skipped, unless PRIVATEML_REQUIRE_SHARED=1 (CI), where that is a failure.
/// </summary>
internal static class HeadlessChromium
{
    public const int Width = 1200;
    public const int Height = 2000;

    private const string Binary = "/usr/bin/chromium";

    public static string RequireBinary()
    {
        if (!File.Exists(Binary))
        {
            const string reason = Binary + " is not installed (apt-get install -y chromium); browser rendering test skipped";
            if (Environment.GetEnvironmentVariable(SharedTestData.RequireVariable) == "1")
            {
                Assert.Fail(reason + $", but {SharedTestData.RequireVariable}=1 requires it");
            }

            Assert.Skip(reason);
        }

        return Binary;
    }

    /// <summary>Renders <paramref name="htmlFile"/>; returns the rendered DOM and writes the screenshot to <paramref name="screenshot"/>.</summary>
    public static async Task<string> RenderAsync(string htmlFile, string screenshot, CancellationToken cancellationToken)
    {
        var binary = RequireBinary();
        var profile = Directory.CreateTempSubdirectory("privateml-chromium-").FullName;
        try
        {
            var start = new ProcessStartInfo(binary)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[]
            {
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
                $"--user-data-dir={profile}", $"--window-size={Width},{Height}", $"--screenshot={screenshot}", "--dump-dom",
                new Uri(Path.GetFullPath(htmlFile)).AbsoluteUri,
            })
            {
                start.ArgumentList.Add(arg);
            }

            using var process = Process.Start(start)!;
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(TimeSpan.FromMinutes(2)); // a hung browser must not hang the test run
            string dom;
            Task<string> stderr;
            try
            {
                stderr = process.StandardError.ReadToEndAsync(limit.Token);
                dom = await process.StandardOutput.ReadToEndAsync(limit.Token);
                await process.WaitForExitAsync(limit.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            Assert.True(process.ExitCode == 0, $"chromium exited {process.ExitCode}: {await stderr}");
            Assert.True(File.Exists(screenshot), $"chromium wrote no screenshot: {await stderr}");
            return dom;
        }
        finally
        {
            Directory.Delete(profile, recursive: true);
        }
    }
}
