using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Attestation.Tests.Tdx.NegativeCorpus;

/// <summary>Pinned time, report data and verifier construction shared by the corpus.</summary>
internal static class CorpusFixture
{
    public static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static byte[] ReportData { get; } = Enumerable.Range(0, 64).Select(i => (byte)(0xA0 ^ i)).ToArray();

    public static SimulatedTdxPlatform NewPlatform(SimulatedPlatformOptions? options = null) =>
        SimulatedTdxPlatform.Create(options ?? new SimulatedPlatformOptions(), Now);

    public static DcapVerifier Verifier(SimulatedTdxPlatform platform) =>
        new(new DcapVerifierOptions { TrustedRootCertificate = platform.Pki.RootCertificate.RawData, AllowSimulated = true });

    public static string Describe(QuoteVerificationResult result) =>
        string.Join("\n", result.Checks.Select(c => $"{c.Name}: {c.Outcome} {c.Code} {c.Detail}"));
}
