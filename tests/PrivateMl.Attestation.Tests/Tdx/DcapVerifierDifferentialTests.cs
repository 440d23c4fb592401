using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Tdx;

/// <summary>
/// One test per disagreement between the two npm verifiers listed in testdata/README.md. Each asserts what the peers
/// did (read from expected.json) and that our verdict is the strict one, with the reason in its name and comments.
/// </summary>
public class DcapVerifierDifferentialTests
{
    private static readonly DcapVerifier Verifier = new();

    private static QuoteVerificationResult RunCase(string id, out System.Text.Json.JsonElement c)
    {
        c = Vectors.Case(id);
        return DcapVerifierVectorTests.Run(c.GetProperty("quote").GetString()!, c.GetProperty("collateral").GetString()!, c.GetProperty("time").GetInt64());
    }

    private static string Peer(System.Text.Json.JsonElement c, string peer) => c.GetProperty(peer).GetProperty("result").GetString()!;

    private static CheckResult Check(QuoteVerificationResult r, string name) => r.Checks.Single(x => x.Name == name);

    /// <summary>
    /// WASM ignores tcbInfo/qeIdentity issueDate and CRL thisUpdate and accepts at 1750320802; JS rejects. Collateral
    /// issued after the verification time cannot have been known then: accepting it would let a verifier with a wrong
    /// clock (or a replayed "past" verification) pass. We reject as not yet valid.
    /// </summary>
    [Fact]
    public void Rejects_CollateralIssuedInTheFuture_WhereWasmAccepts()
    {
        var r = RunCase("tdx_quote@1750320802", out var c);
        Assert.Equal("accepted", Peer(c, "wasm"));
        Assert.Equal("error", Peer(c, "js"));
        Assert.Equal(ErrorCode.CollateralNotYetValid, r.Error);
        Assert.Equal(ErrorCode.CollateralNotYetValid, Check(r, DcapVerifier.CheckNames.TcbInfoValidity).Code);
        Assert.Equal(ErrorCode.CollateralNotYetValid, Check(r, DcapVerifier.CheckNames.QeIdentityValidity).Code);
        Assert.Equal(ErrorCode.CrlNotYetValid, Check(r, DcapVerifier.CheckNames.PckCrl).Code);

        // One second before qeIdentity.issueDate: WASM accepts, JS and we reject.
        var qe = RunCase("tdx_quote@qe_identity_not_yet_issued", out var c2);
        Assert.Equal("accepted", Peer(c2, "wasm"));
        Assert.Equal(ErrorCode.CollateralNotYetValid, Check(qe, DcapVerifier.CheckNames.QeIdentityValidity).Code);
        Assert.False(qe.Accepted);
    }

    /// <summary>
    /// WASM returns status "Unknown" without an error when no TCB level matches (fail-open); JS throws. A platform with
    /// no matching level is "TCB not supported" under Intel's rules: we reject and name the component.
    /// </summary>
    [Theory]
    [InlineData("tdx-quote.hex+tdx_quote_collateral@inside")]
    [InlineData("quote-from-tappd.hex+tdx_quote_collateral@inside")]
    public void Rejects_NoMatchingTcbLevel_WhereWasmReturnsUnknown(string id)
    {
        var r = RunCase(id, out var c);
        Assert.Equal("accepted", Peer(c, "wasm"));
        Assert.Equal("Unknown", c.GetProperty("wasm").GetProperty("status").GetString());
        Assert.False(r.Accepted);
        Assert.Null(r.Status);
        Assert.Equal(ErrorCode.TcbLevelNotFound, r.Error);
        Assert.Contains(r.Shortfalls, s => s.Name == "SEAMLDR ACM");
    }

    /// <summary>
    /// WASM does not use the QE identity at all (no signature, dates, MRSIGNER or QE TCB). We verify it: an expired QE
    /// identity is rejected (WASM accepts), and so is a QE identity whose text was altered after signing.
    /// </summary>
    [Fact]
    public void Rejects_ExpiredOrAlteredQeIdentity_WhichWasmNeverChecks()
    {
        var r = RunCase("sgx_quote@qe_identity_expired", out var c);
        Assert.Equal("accepted", Peer(c, "wasm"));
        Assert.Equal(ErrorCode.CollateralExpired, r.Error);
        Assert.Equal(ErrorCode.CollateralExpired, Check(r, DcapVerifier.CheckNames.QeIdentityValidity).Code);

        var collateral = Vectors.Collateral("sgx_quote_collateral.json");
        var altered = collateral with { QeIdentity = collateral.QeIdentity.Replace("\"isvprodid\":1", "\"isvprodid\":2", StringComparison.Ordinal) };
        Assert.NotEqual(collateral.QeIdentity, altered.QeIdentity);
        var tampered = Verifier.Verify(Vectors.Quote("sgx_quote"), altered, DateTimeOffset.FromUnixTimeSeconds(1750400000));
        Assert.Equal(ErrorCode.QeIdentitySignatureInvalid, tampered.Error);
        Assert.Equal(CheckOutcome.Skipped, Check(tampered, DcapVerifier.CheckNames.QeIdentityMatch).Outcome);
    }

    /// <summary>
    /// WASM compares SVN arrays lexicographically. For tdx_quote_outdated the PCK components (3,3,2,2,4,1,0,3,…) are
    /// lexicographically above level 1 (2,2,2,2,3,1,0,5,…), which would "match" an OutOfDate level; component by
    /// component, SEAMLDR ACM (3 &lt; 5) is below every level. We compare component-wise (Intel's rule) and reject.
    /// </summary>
    [Fact]
    public void Compares_SvnsComponentWise_NotLexicographically()
    {
        var r = RunCase("tdx_quote_outdated@inside", out var c);
        Assert.Equal("error", Peer(c, "js"));
        int[] pck = [.. r.Pck!.TcbComponents];
        int[] level1 = [2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.True(((System.Collections.IStructuralComparable)pck).CompareTo(level1, Comparer<int>.Default) > 0, "lexicographically the PCK array is above level 1");
        Assert.Equal(ErrorCode.TcbLevelNotFound, r.Error);
        var shortfall = Assert.Single(r.Shortfalls);
        Assert.Equal((7, 3, 5), (shortfall.Index, shortfall.Actual, shortfall.Required));
    }

    /// <summary>
    /// JS checks neither CRL signatures, issuers nor thisUpdate/nextUpdate (serial lookup only), and accepts tdx_quote
    /// at the PCK CRL's nextUpdate. A CRL past its nextUpdate may be missing newer revocations, and an unsigned CRL can
    /// be emptied by anyone: we reject both (WASM, through webpki, also rejects the first).
    /// </summary>
    [Fact]
    public void Rejects_StaleOrForgedCrl_WhereJsAccepts()
    {
        var r = RunCase("tdx_quote@pck_crl_next_update", out var c);
        Assert.Equal("accepted", Peer(c, "js"));
        Assert.Equal("error", Peer(c, "wasm"));
        Assert.Equal(ErrorCode.CrlExpired, r.Error);

        var collateral = Vectors.Collateral("tdx_quote_collateral.json");
        var crl = (byte[])collateral.PckCrl.Clone();
        crl[^5] ^= 0x01; // inside the signature value
        var forged = Verifier.Verify(Vectors.Quote("tdx_quote"), collateral with { PckCrl = crl }, DateTimeOffset.FromUnixTimeSeconds(1750400000));
        Assert.Equal(ErrorCode.CrlSignatureInvalid, forged.Error);
        Assert.Equal(CheckOutcome.Skipped, Check(forged, DcapVerifier.CheckNames.PckRevocation).Outcome);

        var rootCrl = (byte[])collateral.RootCaCrl.Clone();
        rootCrl[^5] ^= 0x01;
        var forgedRoot = Verifier.Verify(Vectors.Quote("tdx_quote"), collateral with { RootCaCrl = rootCrl }, DateTimeOffset.FromUnixTimeSeconds(1750400000));
        Assert.Equal(ErrorCode.CrlSignatureInvalid, forgedRoot.Error);
    }

    /// <summary>
    /// A CRL from the wrong CA (SGX quote, Processor-CA PCK, against TDX collateral carrying the Platform-CA CRL): JS
    /// rejects only because of the QE identity id; we also report that the PCK CRL was not issued by the PCK's CA.
    /// </summary>
    [Fact]
    public void Rejects_PckCrlOfAnotherCa()
    {
        var r = RunCase("sgx_quote+tdx_quote_collateral", out _);
        Assert.Equal(ErrorCode.CrlIssuerMismatch, Check(r, DcapVerifier.CheckNames.PckRevocation).Code);
        Assert.Equal(ErrorCode.CollateralTypeMismatch, Check(r, DcapVerifier.CheckNames.QeIdentityType).Code);
    }
}
