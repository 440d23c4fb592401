using System.Text;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Tee.Tests.Simulator;

public sealed class SimulatedQuoteTests
{
    [Fact]
    public void Quote_has_the_real_v4_header_and_carries_the_requested_report_data()
    {
        using var platform = Simulators.Platform();
        var reportData = Simulators.ReportData(7);
        var rtmr3 = Enumerable.Repeat((byte)0x33, 48).ToArray();

        var quote = new QuoteBytes(platform.CreateQuote(reportData, rtmr3));

        Assert.Equal(4, quote.Version);
        Assert.Equal(2, quote.AttestationKeyType);
        Assert.Equal(0x81u, quote.TeeType);
        Assert.Equal("939a7233f79c4ca9940a0db3957f0607", Convert.ToHexStringLower(quote.QeVendorId));
        Assert.Equal(reportData, quote.ReportData);
        Assert.Equal(rtmr3, quote.Rtmr(3));
        Assert.Equal(platform.Profile.MrTd.ToArray(), quote.Body[136..184]);
        Assert.Equal(platform.Profile.Rtmr0.ToArray(), quote.Rtmr(0));
        Assert.Equal(platform.Profile.TdAttributes.ToArray(), quote.Body[120..128]);
        Assert.Equal(0, quote.TrailingLength);
    }

    [Fact]
    public void Signatures_and_qe_binding_verify_independently()
    {
        using var platform = Simulators.Platform();
        var quote = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(1), new byte[48]));

        Assert.True(quote.QuoteSignatureVerifies());
        Assert.True(quote.QeReportSignatureVerifies(platform.Pki.PckCertificate));
        Assert.True(quote.QeReportDataBindsAttestationKey());
        Assert.Equal(platform.QuotingEnclave.AttestationPublicKey.ToArray(), quote.AttestationKey);
        Assert.Equal(platform.QuotingEnclave.Options.MrSigner.ToArray(), quote.QeReport[128..160]);
    }

    [Fact]
    public void Certification_data_is_type_6_wrapping_a_type_5_pem_chain_like_real_quotes()
    {
        var real = new QuoteBytes(SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote"));
        using var platform = Simulators.Platform();
        var simulated = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(2), new byte[48]));

        foreach (var quote in new[] { real, simulated })
        {
            Assert.Equal(6, quote.OuterType);
            Assert.Equal(5, quote.InnerType);
            Assert.Equal(32, quote.AuthData.Length);
            Assert.Equal(134 + quote.OuterSize, quote.SignatureDataLength);
            Assert.Equal(456 + quote.AuthData.Length + quote.InnerSize, quote.OuterSize);
            Assert.Equal(0, quote.CertificationData[^1]);
            Assert.EndsWith("-----END CERTIFICATE-----\n\0", Encoding.ASCII.GetString(quote.CertificationData), StringComparison.Ordinal);
            Assert.Equal(3, quote.PckChain().Length);
        }

        Assert.Equal(real.AuthData, simulated.AuthData);
        Assert.Equal(real.Raw[..12], simulated.Raw[..12]); // version, key type, tee type, reserved
        var chain = simulated.PckChain();
        Assert.Equal(platform.Pki.PckCertificate.RawData, chain[0].RawData);
        Assert.Equal(platform.Pki.PckCaCertificate.RawData, chain[1].RawData);
        Assert.Equal(platform.Pki.RootCertificate.RawData, chain[2].RawData);
    }

    [Fact]
    public void Qe_report_has_the_layout_of_the_real_td_qe_report()
    {
        var real = new QuoteBytes(SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote"));
        using var platform = Simulators.Platform();
        var simulated = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(3), new byte[48]));

        Assert.Equal(real.QeReport[48..64], simulated.QeReport[48..64]); // attributes
        Assert.Equal(real.QeReport[256..258], simulated.QeReport[256..258]); // isv_prod_id 2
        Assert.Equal(platform.Pki.Platform.SgxTcbComponents.ToArray(), simulated.QeReport[..16]);
        foreach (var (start, end) in new[] { (20, 48), (96, 128), (160, 256), (260, 320) })
        {
            Assert.True(simulated.QeReport.AsSpan(start, end - start).IndexOfAnyExcept((byte)0) < 0, $"reserved {start}..{end}");
        }
    }

    [Fact]
    public void Rejects_report_data_of_the_wrong_length()
    {
        using var platform = Simulators.Platform();

        Assert.Throws<ArgumentException>(() => platform.CreateQuote(new byte[63], new byte[48]));
        Assert.Throws<ArgumentException>(() => platform.CreateQuote(new byte[64], new byte[47]));
    }

    [Fact]
    public void Header_defects_keep_the_signature_valid()
    {
        using var platform = Simulators.Platform();
        var defects = new QuoteDefects { Version = 3, AttestationKeyType = 3, TeeType = 0, QeVendorId = new byte[16] };

        var quote = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(4), new byte[48], defects));

        Assert.Equal(3, quote.Version);
        Assert.Equal(3, quote.AttestationKeyType);
        Assert.Equal(0u, quote.TeeType);
        Assert.Equal(new byte[16], quote.QeVendorId);
        Assert.True(quote.QuoteSignatureVerifies());
    }

    [Fact]
    public void Signature_defects_break_exactly_what_they_name()
    {
        using var platform = Simulators.Platform();
        var zero = new byte[48];

        var badQuoteSig = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(5), zero, new QuoteDefects { CorruptQuoteSignature = true }));
        Assert.False(badQuoteSig.QuoteSignatureVerifies());
        Assert.True(badQuoteSig.QeReportSignatureVerifies(platform.Pki.PckCertificate));

        var badQeSig = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(5), zero, new QuoteDefects { SignQeReportWithUnrelatedKey = true }));
        Assert.True(badQeSig.QuoteSignatureVerifies());
        Assert.False(badQeSig.QeReportSignatureVerifies(platform.Pki.PckCertificate));

        var badBinding = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(5), zero, new QuoteDefects { QeReportDataMismatch = true }));
        Assert.False(badBinding.QeReportDataBindsAttestationKey());
        Assert.True(badBinding.QeReportSignatureVerifies(platform.Pki.PckCertificate));

        var otherKey = new QuoteBytes(platform.CreateQuote(Simulators.ReportData(5), zero, new QuoteDefects { SignQuoteWithUnrelatedKey = true }));
        Assert.False(otherKey.QuoteSignatureVerifies());
    }

    [Fact]
    public void Length_defects_change_only_the_declared_sizes()
    {
        using var platform = Simulators.Platform();
        var good = platform.CreateQuote(Simulators.ReportData(6), new byte[48]);
        var bad = platform.CreateQuote(Simulators.ReportData(6), new byte[48], new QuoteDefects { SignatureDataLengthDelta = 1000 });

        Assert.Equal(good.Length, bad.Length);
        Assert.Equal(BitConverter.ToUInt32(good, 632) + 1000, BitConverter.ToUInt32(bad, 632));

        var truncated = platform.CreateQuote(Simulators.ReportData(6), new byte[48], new QuoteDefects { TruncateTo = 700 });
        Assert.Equal(700, truncated.Length);
        var padded = platform.CreateQuote(Simulators.ReportData(6), new byte[48], new QuoteDefects { TrailingBytes = new byte[70] });
        Assert.Equal(70, new QuoteBytes(padded).TrailingLength);
    }
}
