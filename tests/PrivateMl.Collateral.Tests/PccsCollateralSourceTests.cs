using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Tests.Fakes;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests;

public sealed class PccsCollateralSourceTests
{
    public static TheoryData<string> Files => new(CollateralFiles.All);

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Fetches_RealCollateral_ByteForByte(string file)
    {
        var expected = CollateralFiles.Load(file);
        await using var pccs = await FakePccs.StartAsync(expected);
        using var http = new HttpClient();
        var source = new PccsCollateralSource(http, pccs.BaseAddress);

        var fetched = await source.GetCollateralAsync(CollateralFiles.RequestFor(file), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(expected, fetched);
        // Written back in the file's layout (pretty or compact), the bundle is the original file, byte for byte
        // (less a final newline, which belongs to the file, not the JSON).
        var original = SharedTestData.ReadText(file).TrimEnd('\n');
        Assert.Equal(original, CollateralJson.Serialize(fetched, indented: original.StartsWith("{\n", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Asks_TheV4Routes_WithDerCrlAndUpperCaseFmspc()
    {
        var collateral = CollateralFiles.Load(CollateralFiles.Tdx);
        await using var pccs = await FakePccs.StartAsync(collateral);
        using var http = new HttpClient();

        await new PccsCollateralSource(http, pccs.BaseAddress).GetCollateralAsync(
            new CollateralRequest("b0c06f000000", PckCaType.Platform, TeeType.Tdx), TestContext.Current.CancellationToken);

        Assert.Equal(
            ["/sgx/certification/v4/pckcrl?ca=platform&encoding=der", "/sgx/certification/v4/rootcacrl", "/tdx/certification/v4/qe/identity", "/tdx/certification/v4/tcb?fmspc=B0C06F000000"],
            pccs.Requests.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Accepts_BaseAddressWithCertificationPath()
    {
        var collateral = CollateralFiles.Load(CollateralFiles.Sgx);
        await using var pccs = await FakePccs.StartAsync(collateral);
        using var http = new HttpClient();
        var source = new PccsCollateralSource(http, new Uri(pccs.BaseAddress, "/sgx/certification/v4/"));

        var fetched = await source.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Sgx), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(collateral, fetched);
    }

    [Fact]
    public async Task Converts_PemPckCrl_ToDer()
    {
        var collateral = CollateralFiles.Load(CollateralFiles.Tdx);
        await using var pccs = await FakePccs.StartAsync(collateral);
        pccs.PckCrlAsPem = true;
        using var http = new HttpClient();

        var fetched = await new PccsCollateralSource(http, pccs.BaseAddress).GetCollateralAsync(
            CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken);

        Assert.Equal(collateral.PckCrl, fetched.PckCrl);
    }

    [Fact]
    public async Task FallsBack_ToRootDistributionPoint_WhenPccsHasNoRootCaCrlRoute()
    {
        var collateral = CollateralFiles.Load(CollateralFiles.Tdx);
        await using var pccs = await FakePccs.StartAsync(collateral);
        pccs.Inject(PccsRoute.RootCaCrl, PccsFault.NotFound, times: 1);
        using var http = new HttpClient();
        var options = new PccsCollateralSourceOptions { RootCaCrlUri = new Uri(pccs.BaseAddress, "/IntelSGXRootCA.der") };

        var fetched = await new PccsCollateralSource(http, pccs.BaseAddress, options).GetCollateralAsync(
            CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken);

        Assert.Equal(collateral.RootCaCrl, fetched.RootCaCrl);
        Assert.Contains("/IntelSGXRootCA.der", pccs.Requests);
    }

    [Fact]
    public void UsesDistributionPoint_ForIntelPcs()
    {
        using var http = new HttpClient();
        var source = new PccsCollateralSource(http, new Uri("https://api.trustedservices.intel.com/"));

        Assert.True(source.IsIntelPcs);
        Assert.Equal(
            "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=B0C06F000000",
            source.TcbInfoUri(new CollateralRequest("b0c06f000000", PckCaType.Platform, TeeType.Tdx)).AbsoluteUri);
    }

    public static TheoryData<PccsRoute, PccsFault, ErrorCode> Faults => new()
    {
        { PccsRoute.TcbInfo, PccsFault.NotFound, ErrorCode.CollateralUnavailable },
        { PccsRoute.QeIdentity, PccsFault.ServerError, ErrorCode.CollateralUnavailable },
        { PccsRoute.PckCrl, PccsFault.ServiceUnavailable, ErrorCode.CollateralUnavailable },
        { PccsRoute.TcbInfo, PccsFault.AbortMidBody, ErrorCode.CollateralUnavailable },
        { PccsRoute.PckCrl, PccsFault.AbortMidBody, ErrorCode.CollateralUnavailable },
        { PccsRoute.TcbInfo, PccsFault.HtmlInsteadOfJson, ErrorCode.CollateralMalformed },
        { PccsRoute.QeIdentity, PccsFault.HtmlInsteadOfJson, ErrorCode.CollateralMalformed },
        { PccsRoute.TcbInfo, PccsFault.TruncatedBody, ErrorCode.CollateralMalformed },
        { PccsRoute.QeIdentity, PccsFault.TruncatedBody, ErrorCode.CollateralMalformed },
        { PccsRoute.PckCrl, PccsFault.TruncatedBody, ErrorCode.CollateralMalformed },
        { PccsRoute.TcbInfo, PccsFault.IssuerChainHeaderMissing, ErrorCode.CollateralMalformed },
        { PccsRoute.QeIdentity, PccsFault.IssuerChainHeaderMissing, ErrorCode.CollateralMalformed },
        { PccsRoute.PckCrl, PccsFault.IssuerChainHeaderMissing, ErrorCode.CollateralMalformed },
        { PccsRoute.TcbInfo, PccsFault.WrongFmspc, ErrorCode.CollateralMalformed },
        { PccsRoute.TcbInfo, PccsFault.Oversized, ErrorCode.CollateralMalformed },
        { PccsRoute.TcbInfo, PccsFault.DuplicateSignedMember, ErrorCode.CollateralMalformed },
        { PccsRoute.QeIdentity, PccsFault.SignatureNotHex, ErrorCode.CollateralMalformed },
        { PccsRoute.PckCrl, PccsFault.CrlGarbage, ErrorCode.CollateralMalformed },
        { PccsRoute.RootCaCrl, PccsFault.CrlGarbage, ErrorCode.CollateralMalformed },
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public async Task Rejects_BadPccsAnswer_WithTypedError(PccsRoute route, PccsFault fault, ErrorCode expected)
    {
        await using var pccs = await FakePccs.StartAsync(CollateralFiles.Load(CollateralFiles.Tdx));
        pccs.Inject(route, fault);
        using var http = new HttpClient();
        var source = new PccsCollateralSource(http, pccs.BaseAddress);

        var ex = await Assert.ThrowsAsync<AttestationException>(() =>
            source.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(expected, ex.Code);
    }

    [Fact]
    public async Task Rejects_RequestForUnknownFmspc_AsUnavailable()
    {
        await using var pccs = await FakePccs.StartAsync(CollateralFiles.Load(CollateralFiles.Tdx));
        using var http = new HttpClient();

        var ex = await Assert.ThrowsAsync<AttestationException>(() => new PccsCollateralSource(http, pccs.BaseAddress).GetCollateralAsync(
            new CollateralRequest("00606a000000", PckCaType.Platform, TeeType.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
    }

    [Fact]
    public async Task Rejects_ServerThatIsGone_AsUnavailable()
    {
        var pccs = await FakePccs.StartAsync(CollateralFiles.Load(CollateralFiles.Tdx));
        var address = pccs.BaseAddress;
        await pccs.DisposeAsync();
        using var http = new HttpClient();

        var ex = await Assert.ThrowsAsync<AttestationException>(() => new PccsCollateralSource(http, address).GetCollateralAsync(
            CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
        Assert.True(RetryingCollateralSource.IsTransient(ex));
    }

    [Fact]
    public void Keeps_SignedObjectBytes_ExactlyAsServed()
    {
        const string signed = "{ \"id\" : \"TDX\",\n  \"fmspc\":\"B0C06F000000\", \"x\":\"\\u00e9\" }";
        var body = System.Text.Encoding.UTF8.GetBytes($"{{\n \"tcbInfo\" : {signed} ,\"signature\":\"0a0B\"}}\n");

        var (text, signature) = PccsCollateralSource.ExtractSigned(body, "tcbInfo", "TCB info");

        Assert.Equal(signed, text);
        Assert.Equal(new byte[] { 0x0a, 0x0b }, signature);
    }

    [Theory]
    [InlineData("{\"tcbInfo\":{}}")]
    [InlineData("{\"signature\":\"00\"}")]
    [InlineData("{\"tcbInfo\":[],\"signature\":\"00\"}")]
    [InlineData("{\"tcbInfo\":{},\"signature\":\"00\"} {}")]
    [InlineData("{\"tcbInfo\":{},\"signature\":\"\"}")]
    [InlineData("[]")]
    [InlineData("")]
    public void Rejects_BodyNotInPcsShape(string body)
    {
        var ex = Assert.Throws<AttestationException>(() =>
            PccsCollateralSource.ExtractSigned(System.Text.Encoding.UTF8.GetBytes(body), "tcbInfo", "TCB info"));

        Assert.Equal(ErrorCode.CollateralMalformed, ex.Code);
    }
}
