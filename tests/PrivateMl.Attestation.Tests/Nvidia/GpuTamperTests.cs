using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using Names = PrivateMl.Attestation.Nvidia.GpuEvidenceVerifier.CheckNames;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>A flipped byte anywhere — report, signature, nonce, any certificate — is rejected with its own reason.</summary>
public sealed class GpuTamperTests
{
    private const string File = "spdm/hopper-550.90.07.report.hex";
    private static readonly GpuEvidenceVerifier Verifier = new();

    // Offsets into the 4117-byte report (signature at 4021, opaque at 3599).
    [Theory]
    [InlineData("request nonce", 10, ErrorCode.GpuNonceMismatch)]
    [InlineData("request param2", 3, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("measurement block value", 45 + 4 + 3 + 5, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("last measurement byte", 3564, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("response nonce", 3570, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("opaque data", 3610, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("signature r", 4021 + 5, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("signature s", 4021 + 90, ErrorCode.GpuReportSignatureInvalid)]
    [InlineData("SPDM version", 0, ErrorCode.SpdmVersionUnsupported)]
    [InlineData("response code", 38, ErrorCode.SpdmMessageMalformed)]
    [InlineData("record length", 43, ErrorCode.SpdmMessageMalformed)]
    [InlineData("record length high byte", 44, ErrorCode.SpdmReportTruncated)]
    [InlineData("block count", 41, ErrorCode.SpdmMessageMalformed)]
    public void Rejects_report_with_flipped_byte(string where, int offset, ErrorCode expected)
    {
        var item = NvidiaVectors.Item(File);
        var evidence = (byte[])item.Evidence.Clone();
        evidence[offset] ^= 0x01;
        var result = Verifier.VerifyItem(item with { Evidence = evidence }, 0, ExpectedNonce(), NvidiaVectors.Now);
        Assert.False(result.Accepted, where);
        Assert.Equal(expected, result.Error);
    }

    [Fact]
    public void Rejects_other_nonce()
    {
        var nonce = ExpectedNonce();
        nonce[31] ^= 0x80;
        var result = Verifier.VerifyItem(NvidiaVectors.Item(File), 0, nonce, NvidiaVectors.Now);
        Assert.Equal(ErrorCode.GpuNonceMismatch, result.Error);
        Assert.Equal(CheckOutcome.Passed, result.Find(Names.Signature)!.Outcome);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Rejects_chain_with_flipped_certificate_byte(int index)
    {
        var item = NvidiaVectors.Item(File);
        var ders = SplitPem(item.CertificateChainPem);
        ders[index][^10] ^= 0x01; // inside the issuer's signature value
        var result = Verifier.VerifyItem(item with { CertificateChainPem = JoinPem(ders) }, 0, ExpectedNonce(), NvidiaVectors.Now);
        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.GpuCertificateChainUntrusted, result.Find(Names.CertificateChain)!.Code);
    }

    [Fact]
    public void Rejects_chain_that_is_not_x509()
    {
        var item = NvidiaVectors.Item(File);
        var ders = SplitPem(item.CertificateChainPem);
        ders[1] = ders[1][..40];
        var result = Verifier.VerifyItem(item with { CertificateChainPem = JoinPem(ders) }, 0, ExpectedNonce(), NvidiaVectors.Now);
        Assert.Equal(ErrorCode.GpuCertificateChainMalformed, result.Find(Names.CertificateChain)!.Code);
        Assert.Equal(CheckOutcome.Skipped, result.Find(Names.Signature)!.Outcome);
    }

    [Fact]
    public void Rejects_report_signed_by_another_devices_chain()
    {
        // The leaf of another GPU: chain fine, signature and FWID fail.
        var item = NvidiaVectors.Item(File) with { CertificateChainPem = NvidiaVectors.Chain("spdm/hopper-570.124.03.chain.pem") };
        var result = Verifier.VerifyItem(item, 0, ExpectedNonce(), NvidiaVectors.Now);
        Assert.Equal(CheckOutcome.Passed, result.Find(Names.CertificateChain)!.Outcome);
        Assert.Equal(ErrorCode.GpuReportSignatureInvalid, result.Find(Names.Signature)!.Code);
        Assert.Equal(ErrorCode.GpuFwidMismatch, result.Find(Names.Fwid)!.Code);
    }

    [Fact]
    public void Rejects_chain_ending_in_a_self_made_root()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var req = new CertificateRequest("CN=NVIDIA Device Identity CA, O=NVIDIA", key, HashAlgorithmName.SHA384);
        using var fake = req.CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue.AddYears(-1));
        var item = NvidiaVectors.Item(File);
        var ders = SplitPem(item.CertificateChainPem);
        ders[4] = fake.RawData;
        var result = Verifier.VerifyItem(item with { CertificateChainPem = JoinPem(ders) }, 0, ExpectedNonce(), NvidiaVectors.Now);
        Assert.Equal(ErrorCode.GpuCertificateChainUntrusted, result.Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(36)]
    [InlineData(45)]
    [InlineData(3598)]
    [InlineData(4100)]
    public void Truncated_report_is_a_typed_error(int length)
    {
        var item = NvidiaVectors.Item(File);
        var ex = Assert.Throws<AttestationException>(() => SpdmMeasurementReport.Parse(item.Evidence.AsSpan(0, length)));
        Assert.Contains(ex.Code, new[] { ErrorCode.SpdmReportTruncated, ErrorCode.SpdmMessageMalformed });
    }

    [Fact]
    public void Oversized_report_is_refused_before_parsing()
    {
        var ex = Assert.Throws<AttestationException>(() => SpdmMeasurementReport.Parse(new byte[SpdmLayout.MaxReportSize + 1]));
        Assert.Equal(ErrorCode.GpuEvidenceTooLarge, ex.Code);
    }

    [Theory]
    [InlineData("[]", ErrorCode.GpuEvidenceMalformed)]
    [InlineData("{\"nonce\":\"00\",\"evidence_list\":[]}", ErrorCode.GpuEvidenceMalformed)]
    [InlineData("{\"nonce\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"evidence_list\":[]}", ErrorCode.GpuEvidenceMalformed)]
    [InlineData("{\"nonce\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"evidence_list\":[{\"evidence\":\"!!\",\"certificate\":\"\"}]}", ErrorCode.GpuEvidenceMalformed)]
    [InlineData("{", ErrorCode.GpuEvidenceMalformed)]
    public void Malformed_payload_is_a_typed_failure(string json, ErrorCode expected)
    {
        var result = Verifier.Verify(json, new byte[32], NvidiaVectors.Now);
        Assert.False(result.Accepted);
        Assert.Equal(expected, result.Error);
    }

    [Fact]
    public void Payload_nonce_must_equal_the_callers()
    {
        var item = NvidiaVectors.Item(File);
        var json = NvidiaVectors.PayloadJson(Convert.ToHexStringLower(ExpectedNonce()), item);
        Assert.True(Verifier.Verify(json, ExpectedNonce(), NvidiaVectors.Now).Accepted);
        var other = new byte[32];
        var result = Verifier.Verify(json, other, NvidiaVectors.Now);
        Assert.Equal(ErrorCode.GpuNonceMismatch, result.Checks.Single(c => c.Name == Names.PayloadNonce).Code);
        Assert.False(result.Accepted);
    }

    [Fact]
    public void Random_corruption_never_escapes_as_an_untyped_exception()
    {
        var item = NvidiaVectors.Item(File);
        var json = NvidiaVectors.PayloadJson(Convert.ToHexStringLower(ExpectedNonce()), item);
        var random = new Random(7);
        for (var i = 0; i < 300; i++)
        {
            var evidence = (byte[])item.Evidence.Clone();
            var pem = (byte[])item.CertificateChainPem.Clone();
            var target = random.Next(2) == 0 ? evidence : pem;
            for (var k = random.Next(1, 4); k > 0; k--)
            {
                target[random.Next(target.Length)] = (byte)random.Next(256);
            }

            var result = Verifier.VerifyItem(item with { Evidence = evidence, CertificateChainPem = pem }, 0, ExpectedNonce(), NvidiaVectors.Now);
            Assert.NotEmpty(result.Checks);

            var chars = json.ToCharArray();
            chars[random.Next(chars.Length)] = (char)random.Next(32, 127);
            Assert.NotNull(Verifier.Verify(new string(chars), ExpectedNonce(), NvidiaVectors.Now));
        }
    }

    private static byte[] ExpectedNonce() => NvidiaVectors.NonceOf(NvidiaVectors.Expected.GetProperty("spdm").GetProperty(File));

    internal static List<byte[]> SplitPem(byte[] pem)
    {
        var text = Encoding.ASCII.GetString(pem);
        var list = new List<byte[]>();
        var pos = 0;
        while ((pos = text.IndexOf("-----BEGIN CERTIFICATE-----", pos, StringComparison.Ordinal)) >= 0)
        {
            var end = text.IndexOf("-----END CERTIFICATE-----", pos, StringComparison.Ordinal);
            list.Add(Convert.FromBase64String(text[(pos + 27)..end]));
            pos = end;
        }

        return list;
    }

    internal static byte[] JoinPem(IEnumerable<byte[]> ders) =>
        Encoding.ASCII.GetBytes(string.Concat(ders.Select(d => PemEncoding.WriteString("CERTIFICATE", d) + "\n")));
}
