using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests;

public sealed class QuotePlatformTests
{
    [Theory]
    [InlineData("tdx/dcap-qvl/tdx_quote", "B0C06F000000", PckCaType.Platform, TeeType.Tdx)]
    [InlineData("tdx/dcap-qvl/tdx_quote_outdated", "90C06F000000", PckCaType.Platform, TeeType.Tdx)]
    [InlineData("tdx/dcap-qvl/sgx_quote", "00A067110000", PckCaType.Processor, TeeType.Sgx)]
    [InlineData("tdx/dcap-qvl/tdx-quote.hex", "B0C06F000000", PckCaType.Platform, TeeType.Tdx)]
    public void Reads_WhatCollateralARealQuoteNeeds(string file, string fmspc, PckCaType ca, TeeType tee)
    {
        var quote = TdxQuote.Parse(QuoteInput.Decode(SharedTestData.ReadBytes(file)));

        var request = QuotePlatform.CollateralRequestFor(quote);

        Assert.Equal(new CollateralRequest(fmspc, ca, tee), request);
    }

    [Fact]
    public void Rejects_QuoteWithoutPckChain()
    {
        var quote = TdxQuote.Parse(QuoteInput.Decode(SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote")));
        var stripped = quote with
        {
            Signature = quote.Signature with { CertificationData = new CertificationData { Type = CertificationDataType.PpidCleartext, Data = new byte[16] } },
        };

        var ex = Assert.Throws<AttestationException>(() => QuotePlatform.CollateralRequestFor(stripped));

        Assert.Equal(ErrorCode.UnsupportedCertificationDataType, ex.Code);
    }

    [Fact]
    public void Rejects_ChainThatIsNotPem()
    {
        var quote = TdxQuote.Parse(QuoteInput.Decode(SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote")));
        var garbled = quote with
        {
            Signature = quote.Signature with { CertificationData = new CertificationData { Type = CertificationDataType.PckCertificateChain, Data = "not a chain"u8.ToArray() } },
        };

        var ex = Assert.Throws<AttestationException>(() => QuotePlatform.CollateralRequestFor(garbled));

        Assert.Equal(ErrorCode.PckChainMalformed, ex.Code);
    }
}
