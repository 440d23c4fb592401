using System.Diagnostics;
using PrivateMl.Gateway.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Interop;

/// <summary>
/// Runs tests/interop/gateway/gateway-interop.js (npm openai, ethers.verifyMessage, tweetnacl) against a simulated
/// node. Skipped when node or the script's node_modules are missing, unless PRIVATEML_REQUIRE_SHARED=1.
/// </summary>
public sealed class GatewayNpmInteropTests
{
    [Fact]
    public async Task NpmOpenAi_CompletesChats_AndEthersAndTweetnaclVerifyTheSignatures()
    {
        var directory = Path.Combine(SharedTestData.RepositoryRoot, "tests", "interop", "gateway");
        var node = new[] { "/usr/bin/node", "/usr/local/bin/node" }.FirstOrDefault(File.Exists);
        if (node is null || !Directory.Exists(Path.Combine(directory, "node_modules", "openai")))
        {
            var reason = $"node or {directory}/node_modules is missing (run npm ci there)";
            if (Environment.GetEnvironmentVariable("PRIVATEML_REQUIRE_SHARED") == "1")
            {
                Assert.Fail(reason);
            }

            Assert.Skip(reason);
        }

        await using var gateway = await GatewayFixture.StartAsync();
        var start = new ProcessStartInfo(node, [Path.Combine(directory, "gateway-interop.js")])
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["GATEWAY_URL"] = gateway.Client.BaseAddress!.ToString();
        start.Environment["GATEWAY_TOKEN"] = GatewayFixture.Token;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        var output = await stdout + await stderr;

        Assert.True(process.ExitCode == 0, output);
        Assert.Contains("\"passed\": true", output, StringComparison.Ordinal);
        Assert.Contains("ethers.verifyMessage recovers signing_address\": true", output, StringComparison.Ordinal);
        Assert.Contains("tweetnacl verifies Ed25519\": true", output, StringComparison.Ordinal);
    }
}
