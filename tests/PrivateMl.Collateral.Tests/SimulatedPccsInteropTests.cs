using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests;

/// <summary>
/// The whole offline-verification supply chain with nothing real but HTTP: the simulator's PCCS routes serve
/// collateral it signed, <see cref="PccsCollateralSource"/> fetches it for a simulated quote, <see cref="DcapVerifier"/>
/// verifies it under the (explicitly trusted) simulated root, and a policy judges it.
/// </summary>
public sealed class SimulatedPccsInteropTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task FetchedSimulatedCollateral_VerifiesAndPassesPolicy()
    {
        using var platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions(), Now);
        var clock = new ManualClock(Now);
        await using var app = await LoopbackServer.StartAsync(server => server.MapSimulatedPccs(platform, clock), TestContext.Current.CancellationToken);
        var address = app.BaseAddress();

        var quoteBytes = platform.CreateQuote(new byte[64], new byte[48]);
        var request = QuotePlatform.CollateralRequestFor(TdxQuote.Parse(quoteBytes));
        using var http = new HttpClient();
        var collateral = await new PccsCollateralSource(http, address).GetCollateralAsync(request, TestContext.Current.CancellationToken);
        var verification = new DcapVerifier(new DcapVerifierOptions { TrustedRootCertificate = platform.Pki.RootCertificate.RawData, AllowSimulated = true })
            .Verify(quoteBytes, collateral, Now);
        var policy = PolicyEvaluator.Evaluate(AttestationPolicy.Default with { AllowSimulated = true }, verification);

        Assert.True(verification.Accepted, string.Join("\n", verification.Checks.Select(c => $"{c.Name}: {c.Outcome} {c.Detail}")));
        Assert.True(verification.IsSimulated);
        Assert.True(policy.Accepted, string.Join("\n", policy.Failures));
        await app.StopAsync(TestContext.Current.CancellationToken);
    }
}
