using System.Text.Json;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Tdx;

public class DcapCollateralJsonTests
{
    [Theory]
    [InlineData("tdx/dcap-qvl/tdx_quote_collateral.json")]
    [InlineData("tdx/dcap-qvl/tdx_quote_outdated_collateral.json")]
    [InlineData("tdx/dcap-qvl/sgx_quote_collateral.json")]
    public void Reads_RealCollateral_AndKeepsSignedTextExact(string file)
    {
        var json = SharedTestData.ReadText(file);
        var collateral = JsonSerializer.Deserialize<DcapCollateral>(json)!;

        using var doc = JsonDocument.Parse(json);
        Assert.Equal(doc.RootElement.GetProperty("tcb_info").GetString(), collateral.TcbInfo);
        Assert.Equal(doc.RootElement.GetProperty("qe_identity").GetString(), collateral.QeIdentity);
        Assert.Equal(64, collateral.TcbInfoSignature.Length);
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", collateral.TcbInfoIssuerChain, StringComparison.Ordinal);

        var again = JsonSerializer.Deserialize<DcapCollateral>(JsonSerializer.Serialize(collateral))!;
        Assert.Equal(collateral.PckCrl, again.PckCrl);
        Assert.Equal(collateral.TcbInfo, again.TcbInfo);
    }
}
