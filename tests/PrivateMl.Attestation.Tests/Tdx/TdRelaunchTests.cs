using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Tdx;

/// <summary>
/// TD 1.5: the TCB is evaluated a second time with TEE_TCB_SVN2. No real vector reaches this step (tdx_quote_outdated
/// matches no level at launch), so the step runs here on the real TD 1.5 quote's fields with a synthetic TCB info.
/// </summary>
public class TdRelaunchTests
{
    private static readonly DateTimeOffset Date = DateTimeOffset.FromUnixTimeSeconds(1710288000);

    private static TcbInfoLevel Level(int lateMicrocode, TcbStatus status) => new(
        [3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
        new string[16],
        13,
        [5, 0, lateMicrocode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        new string[16],
        Date,
        status,
        status.ToString(),
        status == TcbStatus.UpToDate ? [] : ["INTEL-SA-00837"]);

    private static TcbInfo Info() => new()
    {
        Id = "TDX",
        Version = 3,
        IssueDate = Date,
        NextUpdate = Date.AddDays(30),
        Fmspc = Convert.FromHexString("90c06f000000"),
        PceId = [0, 0],
        TcbType = 0,
        TcbEvaluationDataNumber = 18,
        TdxModuleIdentities = [new TdxModuleIdentity("TDX_01", new byte[48], new byte[8], new byte[8], [new IsvSvnLevel(4, Date, TcbStatus.UpToDate, "UpToDate", [])])],
        Levels = [Level(3, TcbStatus.UpToDate), Level(2, TcbStatus.OutOfDate)],
    };

    private static (TdxQuote Quote, PckExtensions Pck) Quote(byte launchMicrocode, byte currentMicrocode)
    {
        var quote = TdxQuote.Parse(Vectors.Quote("tdx_quote_outdated"));
        var td = quote.TdReport!;
        quote = quote with
        {
            TdReport = td with
            {
                TeeTcbSvn = new byte[] { 7, 1, launchMicrocode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
                TeeTcbSvn2 = new byte[] { 7, 1, currentMicrocode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
            },
        };
        var result = DcapVerifierVectorTests.Run("tdx_quote_outdated", "tdx_quote_outdated_collateral.json", 1772000000);
        return (quote, result.Pck!);
    }

    private static CheckResult Evaluate(byte launch, byte current, TcbStatus launchStatus, out DcapVerifier.TcbEvaluation tcb)
    {
        var (quote, pck) = Quote(launch, current);
        tcb = new DcapVerifier.TcbEvaluation
        {
            Merged = launchStatus,
            Qe = new TcbLevelMatch(0, TcbStatus.UpToDate, Date, []),
        };
        return DcapVerifier.CheckTdRelaunch(quote, pck, Info(), tcb);
    }

    [Fact]
    public void Advises_Relaunch_WhenLaunchedOutOfDate_ButCurrentIsUpToDate()
    {
        var check = Evaluate(2, 3, TcbStatus.OutOfDate, out var tcb);
        Assert.Equal(CheckOutcome.Passed, check.Outcome);
        Assert.Equal(TcbStatus.UpToDate, tcb.Current);
        Assert.True(tcb.RelaunchAdvised);
        Assert.Contains("relaunch advised", check.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void NoRelaunch_WhenCurrentIsStillOutOfDate()
    {
        var check = Evaluate(2, 2, TcbStatus.OutOfDate, out var tcb);
        Assert.Equal(CheckOutcome.Passed, check.Outcome);
        Assert.Equal(TcbStatus.OutOfDate, tcb.Current);
        Assert.False(tcb.RelaunchAdvised);
    }

    [Fact]
    public void Fails_WhenCurrentTcbMatchesNoLevel()
    {
        var check = Evaluate(3, 1, TcbStatus.UpToDate, out var tcb);
        Assert.Equal(ErrorCode.TcbLevelNotFound, check.Code);
        Assert.Null(tcb.Current);
    }

    [Fact]
    public void Skipped_ForTd10Reports_AndWithoutLaunchEvaluation()
    {
        var result = DcapVerifierVectorTests.Run("tdx_quote", "tdx_quote_collateral.json", 1750400000);
        Assert.Equal(CheckOutcome.Skipped, result.Checks.Single(c => c.Name == DcapVerifier.CheckNames.TdRelaunch).Outcome);
        Assert.False(result.TdRelaunchAdvised);
        var outdated = DcapVerifierVectorTests.Run("tdx_quote_outdated", "tdx_quote_outdated_collateral.json", 1772000000);
        Assert.Equal(CheckOutcome.Skipped, outdated.Checks.Single(c => c.Name == DcapVerifier.CheckNames.TdRelaunch).Outcome);
        Assert.Null(outdated.CurrentTcbStatus);
    }
}
