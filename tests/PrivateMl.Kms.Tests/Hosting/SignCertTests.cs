using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Agent.Certificates;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Rpc;
using PrivateMl.Kms.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Kms.Tests.Hosting;

/// <summary>dstack's SignCert: a SCALE CSR carrying its own quote, answered with leaf → app CA → root CA.</summary>
public sealed class SignCertTests
{
    [Fact]
    public async Task SignsALeafUnderTheAppCa_ForAnAttestedCsr()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var (csr, signature) = Csr(cvm, key, CertificateFactory.RaTlsReportData(key));
        using var response = await bed.CallAsync("SignCert", null, w =>
        {
            w.WriteNumber("api_version", 1);
            w.WriteString("csr", Convert.ToHexStringLower(csr));
            w.WriteString("signature", Convert.ToHexStringLower(signature));
            w.WriteString("vm_config", "");
        });
        var chain = response.RootElement.GetProperty("certificate_chain").EnumerateArray().Select(e => X509Certificate2.CreateFromPem(e.GetString())).ToArray();
        Assert.Equal(3, chain.Length);
        var (leaf, appCa, root) = (chain[0], chain[1], chain[2]);
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), leaf.PublicKey.ExportSubjectPublicKeyInfo());
        Assert.Equal(cvm.AppId, CertificateFactory.ReadOctetStringExtension(leaf, RaTlsOids.AppId));
        Assert.NotNull(CertificateFactory.ReadOctetStringExtension(leaf, RaTlsOids.Quote));
        Assert.Equal("app:ca", Encoding.UTF8.GetString(CertificateFactory.ReadOctetStringExtension(appCa, RaTlsOids.CertUsage)!));
        Assert.Equal(bed.RootCa.RawData, root.RawData);

        var (built, status) = CustomRootChain.Build(leaf, root, [appCa]);
        Assert.True(built, status);
    }

    [Fact]
    public async Task Rejects_CsrWhoseSignatureIsNotByItsKey()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var (csr, signature) = Csr(cvm, key, CertificateFactory.RaTlsReportData(key));
        signature[^1] ^= 1;
        Assert.Equal(ErrorCode.KmsRequestInvalid, await SignCertRefusal(bed, csr, signature));
    }

    [Fact]
    public async Task Rejects_CsrWhoseQuoteIsForAnotherKey()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var (csr, signature) = Csr(cvm, key, CertificateFactory.RaTlsReportData(other));
        Assert.Equal(ErrorCode.KmsQuoteNotBoundToCertificate, await SignCertRefusal(bed, csr, signature));
    }

    [Fact]
    public void Scale_RoundTrips_AndRejectsTruncationAndTrailingBytes()
    {
        var request = new CertSigningRequest(CertSigningRequest.ConfirmWord, new byte[91], new CertConfig("Org", "subject", ["a.example", "b.example"], true, true, false), new byte[5000], new byte[70]);
        var encoded = request.Encode();
        var decoded = CertSigningRequest.Decode(encoded);
        Assert.Equal(request.Config.SubjectAltNames, decoded.Config.SubjectAltNames);
        Assert.Equal(request.Quote.Length, decoded.Quote.Length);
        Assert.Equal("Org", decoded.Config.OrgName);
        Assert.Equal(encoded, decoded.Encode());
        Assert.Equal(ErrorCode.KmsRequestInvalid, Assert.Throws<AttestationException>(() => CertSigningRequest.Decode(encoded.AsSpan(0, encoded.Length - 1))).Code);
        Assert.Equal(ErrorCode.KmsRequestInvalid, Assert.Throws<AttestationException>(() => CertSigningRequest.Decode([.. encoded, 0])).Code);
        Assert.Equal(ErrorCode.KmsRequestInvalid, Assert.Throws<AttestationException>(() => CertSigningRequest.Decode([0xfe, 0xff, 0xff, 0xff])).Code);
    }

    private static (byte[] Csr, byte[] Signature) Csr(SimulatedCvm cvm, ECDsa key, byte[] reportData)
    {
        var evidence = cvm.Evidence(reportData);
        var csr = new CertSigningRequest(
            CertSigningRequest.ConfirmWord,
            key.ExportSubjectPublicKeyInfo(),
            new CertConfig(null, "app.example", ["app.example"], true, false, true),
            evidence.Quote,
            Encoding.UTF8.GetBytes(evidence.EventLogJson)).Encode();
        return (csr, key.SignData(csr, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence));
    }

    private static async Task<ErrorCode> SignCertRefusal(KmsTestbed bed, byte[] csr, byte[] signature)
    {
        var e = await Assert.ThrowsAsync<PrivateMl.Agent.Keys.KmsClientException>(() => bed.CallAsync("SignCert", null, w =>
        {
            w.WriteString("csr", Convert.ToHexStringLower(csr));
            w.WriteString("signature", Convert.ToHexStringLower(signature));
        }));
        return Enum.Parse<ErrorCode>(e.RefusalCode!);
    }
}
