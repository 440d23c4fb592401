using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Policy;

/// <summary>Verification results around the real quote tdx/dcap-qvl/tdx_quote, for policy tests.</summary>
internal static class PolicyFixtures
{
    public static TdxQuote RealTdxQuote() => TdxQuote.Parse(SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote"));

    public static TdxQuote RealSgxQuote() => TdxQuote.Parse(SharedTestData.ReadBytes("tdx/dcap-qvl/sgx_quote"));

    public static QuoteVerificationResult Verified(TdxQuote quote, TcbStatus status, params string[] advisories) => new()
    {
        Checks = [CheckResult.Pass("signatures", "all verified (fixture)")],
        VerifiedAt = DateTimeOffset.FromUnixTimeSeconds(1750400000),
        Quote = quote,
        Status = status,
        PlatformTcbStatus = status,
        QeTcbStatus = TcbStatus.UpToDate,
        AdvisoryIds = advisories,
        TcbEvaluationDataNumber = 17,
        ShortfallsToUpToDate = status == TcbStatus.UpToDate
            ? []
            : [new TcbComponentShortfall(TcbComponentKind.SgxComponent, 7, "SEAMLDR ACM", 3, 5)],
    };

    public static TdxQuote WithTd(TdxQuote quote, Func<TdReportBody, TdReportBody> change) => quote with { TdReport = change(quote.TdReport!) };

    public static byte[] Flip(ReadOnlyMemory<byte> value)
    {
        var copy = value.ToArray();
        copy[^1] ^= 0x01;
        return copy;
    }
}
