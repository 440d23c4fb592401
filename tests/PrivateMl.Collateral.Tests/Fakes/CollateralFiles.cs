using System.Text.Json;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Fakes;

/// <summary>The real dcap-qvl collateral files in ../shared/testdata and what each one is for.</summary>
internal static class CollateralFiles
{
    public const string Tdx = "tdx/dcap-qvl/tdx_quote_collateral.json";
    public const string TdxOutdated = "tdx/dcap-qvl/tdx_quote_outdated_collateral.json";
    public const string Sgx = "tdx/dcap-qvl/sgx_quote_collateral.json";

    public static readonly string[] All = [Tdx, TdxOutdated, Sgx];

    /// <summary>The request each file answers (from testdata/README.md).</summary>
    public static CollateralRequest RequestFor(string file) => file switch
    {
        Tdx => new CollateralRequest("b0c06f000000", PckCaType.Platform, TeeType.Tdx),
        TdxOutdated => new CollateralRequest("90c06f000000", PckCaType.Platform, TeeType.Tdx),
        Sgx => new CollateralRequest("00a067110000", PckCaType.Processor, TeeType.Sgx),
        _ => throw new ArgumentOutOfRangeException(nameof(file)),
    };

    public static DcapCollateral Load(string file) =>
        JsonSerializer.Deserialize<DcapCollateral>(SharedTestData.ReadBytes(file))!;

    public static void AssertSame(DcapCollateral expected, DcapCollateral actual)
    {
        Assert.Equal(expected.PckCrlIssuerChain, actual.PckCrlIssuerChain);
        Assert.Equal(expected.RootCaCrl, actual.RootCaCrl);
        Assert.Equal(expected.PckCrl, actual.PckCrl);
        Assert.Equal(expected.TcbInfoIssuerChain, actual.TcbInfoIssuerChain);
        Assert.Equal(expected.TcbInfo, actual.TcbInfo);
        Assert.Equal(expected.TcbInfoSignature, actual.TcbInfoSignature);
        Assert.Equal(expected.QeIdentityIssuerChain, actual.QeIdentityIssuerChain);
        Assert.Equal(expected.QeIdentity, actual.QeIdentity);
        Assert.Equal(expected.QeIdentitySignature, actual.QeIdentitySignature);
        Assert.Equal(expected.PckCertificateChain, actual.PckCertificateChain);
    }
}
