using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Tests.Fakes;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests;

public sealed class OfflineBundleSourceTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("privateml-bundles-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    public static TheoryData<string> Files => new(CollateralFiles.All);

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Serves_OneFile_ForItsOwnPlatform(string file)
    {
        var source = new OfflineBundleSource(SharedTestData.PathOf(file));

        var collateral = await source.GetCollateralAsync(CollateralFiles.RequestFor(file), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(CollateralFiles.Load(file), collateral);
    }

    [Theory]
    [InlineData("90c06f000000", PckCaType.Platform, TeeType.Tdx)] // other FMSPC
    [InlineData("b0c06f000000", PckCaType.Processor, TeeType.Tdx)] // other CA
    [InlineData("b0c06f000000", PckCaType.Platform, TeeType.Sgx)] // other TEE
    public async Task Refuses_OneFile_ForAnotherPlatform(string fmspc, PckCaType ca, TeeType tee)
    {
        var source = new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx));

        var ex = await Assert.ThrowsAsync<AttestationException>(() =>
            source.GetCollateralAsync(new CollateralRequest(fmspc, ca, tee), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Picks_TheMatchingBundle_FromADirectory(string file)
    {
        foreach (var each in CollateralFiles.All)
        {
            File.Copy(SharedTestData.PathOf(each), Path.Combine(directory, Path.GetFileName(each)));
        }

        File.WriteAllText(Path.Combine(directory, "notes.json"), "{\"not\":\"collateral\"}");

        var collateral = await new OfflineBundleSource(directory).GetCollateralAsync(CollateralFiles.RequestFor(file), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(CollateralFiles.Load(file), collateral);
    }

    [Fact]
    public async Task Refuses_DirectoryWithoutAMatch_NamingSkippedFiles()
    {
        File.Copy(SharedTestData.PathOf(CollateralFiles.Sgx), Path.Combine(directory, "sgx.json"));
        File.WriteAllText(Path.Combine(directory, "broken.json"), "{");

        var ex = await Assert.ThrowsAsync<AttestationException>(() => new OfflineBundleSource(directory).GetCollateralAsync(
            CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
        Assert.Contains("broken.json", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("null")]
    [InlineData("{\"pck_crl_issuer_chain\":\"x\"}")]
    [InlineData("{\"pck_crl_issuer_chain\":\"\",\"root_ca_crl\":\"zz\",\"pck_crl\":\"\",\"tcb_info_issuer_chain\":\"\",\"tcb_info\":\"{}\",\"tcb_info_signature\":\"\",\"qe_identity_issuer_chain\":\"\",\"qe_identity\":\"{}\",\"qe_identity_signature\":\"\"}")]
    [InlineData("{\"pck_crl_issuer_chain\":\"\",\"root_ca_crl\":\"30\",\"pck_crl\":\"30\",\"tcb_info_issuer_chain\":\"\",\"tcb_info\":\"{}\",\"tcb_info_signature\":\"\",\"qe_identity_issuer_chain\":\"\",\"qe_identity\":\"{}\",\"qe_identity_signature\":\"\"}")]
    public async Task Rejects_MalformedFile(string content)
    {
        var file = Path.Combine(directory, "bad.json");
        File.WriteAllText(file, content);

        var ex = await Assert.ThrowsAsync<AttestationException>(() => new OfflineBundleSource(file).GetCollateralAsync(
            CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralMalformed, ex.Code);
    }

    [Fact]
    public async Task Rejects_MissingPath_AsUnavailable()
    {
        var ex = await Assert.ThrowsAsync<AttestationException>(() => new OfflineBundleSource(Path.Combine(directory, "absent")).GetCollateralAsync(
            CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
    }
}
