using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Interop;

/// <summary>
/// The acceptance test of the agent: the unmodified npm <c>@phala/dstack-sdk</c> (tests/interop/dstack-sdk.js)
/// against our agent on the simulator. Needs node and <c>npm install</c> in tests/interop (.ci/run does it); skipped
/// with that reason otherwise, and failed instead when PRIVATEML_REQUIRE_SHARED=1.
/// </summary>
public sealed class DstackSdkInteropTests
{
    [Fact]
    public async Task UnmodifiedDstackSdk_AllCallsSucceed_QuoteVerifies_AndReplayMatches()
    {
        NodeInterop.RequireNodeModules();

        var directory = Directory.CreateTempSubdirectory("pml-interop-").FullName;
        var options = new AgentOptions
        {
            SocketPath = Path.Combine(directory, "dstack.sock"),
            TappdSocketPath = Path.Combine(directory, "tappd.sock"),
            StateDirectory = Path.Combine(directory, "state"),
        };
        var app = GuestAgentHost.BuildSimulated(options, out var simulator, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        try
        {
            await app.StartAsync(TestContext.Current.CancellationToken);
            var reportData = RandomNumberGenerator.GetBytes(48);

            var (exitCode, stdout, stderr) = await NodeInterop.RunAsync("dstack-sdk.js", new Dictionary<string, string?>
            {
                ["DSTACK_SIMULATOR_ENDPOINT"] = options.SocketPath,
                ["TAPPD_SIMULATOR_ENDPOINT"] = options.TappdSocketPath,
                ["REPORT_DATA"] = Convert.ToHexStringLower(reportData),
            });
            Assert.True(stdout.Length > 0, $"node printed nothing; stderr: {stderr}");
            using var document = JsonDocument.Parse(stdout);
            var results = document.RootElement;
            var failures = results.GetProperty("failures").EnumerateArray().Select(f => f.GetString()).ToList();
            Assert.True(failures.Count == 0, "SDK calls or checks failed:\n" + string.Join("\n", failures) + "\nstderr: " + stderr);
            Assert.Equal(0, exitCode);
            foreach (var call in results.GetProperty("calls").EnumerateObject())
            {
                Assert.True(call.Value.GetProperty("ok").GetBoolean(), call.Name);
            }

            foreach (var name in new[] { "isReachable", "version", "info", "getQuote", "getKey.secp256k1", "getKey.ed25519", "getTlsKey", "emitEvent", "sign.secp256k1", "sign.ed25519", "tappd.tdxQuote.sha512", "tappd.tdxQuote.raw", "tappd.deriveKey", "tappd.info" })
            {
                Assert.True(results.GetProperty("calls").TryGetProperty(name, out _), $"the script did not run {name}");
            }

            // The quote the SDK received carries exactly our report_data and verifies against the simulator's collateral.
            var getQuote = results.GetProperty("calls").GetProperty("getQuote").GetProperty("value");
            var quoteBytes = Convert.FromHexString(getQuote.GetProperty("quote").GetString()!);
            var quote = TdxQuote.Parse(quoteBytes);
            Assert.Equal([.. reportData, .. new byte[16]], quote.ReportData.ToArray());
            var verifier = new DcapVerifier(new DcapVerifierOptions
            {
                TrustedRootCertificate = simulator.Platform.Pki.RootCertificate.RawData,
                AllowSimulated = true,
            });
            var verification = verifier.Verify(quoteBytes, simulator.CreateCollateral(), DateTimeOffset.UtcNow);
            Assert.True(verification.Accepted, string.Join("; ", verification.Checks.Where(c => c.Outcome == CheckOutcome.Failed)));
            Assert.True(verification.IsSimulated);

            // The SDK's own replayRtmrs() equals the RTMRs inside the quote (read by our parser, not the script's offsets).
            var replayed = getQuote.GetProperty("replay_rtmrs").EnumerateArray().Select(e => e.GetString()).ToArray();
            Assert.Equal(quote.TdReport!.Rtmrs.Select(r => Convert.ToHexStringLower(r.Span)).ToArray(), replayed);

            // The signature chain the SDK recovered ends in our key provider's root.
            using var provider = LocalKeyProvider.OpenOrCreate(options.StateDirectory, RandomNumberGenerator.Create(), TimeProvider.System);
            foreach (var algorithm in new[] { "secp256k1", "ed25519" })
            {
                var key = results.GetProperty("calls").GetProperty($"getKey.{algorithm}").GetProperty("value");
                Assert.Equal(Convert.ToHexStringLower(provider.RootK256PublicKey), key.GetProperty("root_pubkey").GetString());
            }

            // The event the SDK emitted is in RTMR3 of the next quote.
            var emitted = results.GetProperty("calls").GetProperty("emitEvent").GetProperty("value");
            Assert.Equal("interop-event", emitted.GetProperty("last_event").GetProperty("event").GetString());
            Assert.Equal(
                Convert.ToHexStringLower(TdxEvent.ComputeRuntimeDigest("interop-event", "hello from the dstack sdk"u8)),
                emitted.GetProperty("last_event").GetProperty("digest").GetString());
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            simulator.Dispose();
            Directory.Delete(directory, recursive: true);
        }
    }
}
