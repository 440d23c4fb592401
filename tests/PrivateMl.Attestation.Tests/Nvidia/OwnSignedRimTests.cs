using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Attestation.Nvidia;

namespace PrivateMl.Attestation.Tests.Nvidia;

/// <summary>RIMs the tests build and sign with their own P-384 test CA (XML signature and chain verified).</summary>
public sealed class OwnSignedRimTests : IDisposable
{
    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly ECDsa _signerKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly X509Certificate2 _root;
    private readonly X509Certificate2 _signer;
    private readonly SpdmMeasurementReport _report = SpdmMeasurementReport.Parse(NvidiaVectors.Report("spdm/hopper-550.90.07.report.hex"));

    public OwnSignedRimTests()
    {
        var rootReq = new CertificateRequest("CN=Test RIM Root, O=PrivateMl Tests", _rootKey, HashAlgorithmName.SHA384);
        rootReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        rootReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        _root = rootReq.CreateSelfSigned(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2040, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var signerReq = new CertificateRequest("CN=Test RIM Signer", _signerKey, HashAlgorithmName.SHA384);
        signerReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        _signer = signerReq.Create(_root, new DateTimeOffset(2021, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero), [1, 2, 3]);
    }

    [Fact]
    public void Own_rim_verifies_and_matches_the_report()
    {
        var xml = Build(ActiveFromReport(0, 1, 2, 3, 8));
        using var rim = NvidiaRim.Parse(xml);
        Assert.Null(rim.VerifySignature());
        Assert.Null(rim.VerifyChain(_root));
        Assert.NotNull(rim.VerifyChain(X509CertificateLoader.LoadCertificate(PrivateMl.Attestation.Trust.NvidiaCoRimSigningRootCa.Der)));
        Assert.Equal([0, 1, 2, 3, 8], rim.ActiveIndices);
        var result = RimComparison.Compare(_report, null, rim, null);
        Assert.True(result.Success);
        Assert.Equal(5, result.MatchedCount);
    }

    [Fact]
    public void Own_rim_with_one_wrong_value_reports_that_index()
    {
        var active = ActiveFromReport(0, 1, 2);
        active[2] = [new byte[48]];
        using var rim = NvidiaRim.Parse(Build(active));
        Assert.Null(rim.VerifySignature());
        var result = RimComparison.Compare(_report, rim, null, null);
        Assert.False(result.Success);
        Assert.Equal(new RimMismatch(RimKind.Driver, 2, Convert.ToHexStringLower(_report.FindBlock(3)!.Value.Span)), Assert.Single(result.Mismatches));
    }

    [Fact]
    public void Alternatives_any_of_which_may_match()
    {
        var active = ActiveFromReport(4);
        active[4] = [new byte[48], active[4][0]];
        using var rim = NvidiaRim.Parse(Build(active));
        Assert.Null(rim.VerifySignature());
        Assert.True(RimComparison.Compare(_report, rim, null, null).Success);
    }

    [Fact]
    public void Index_active_in_both_rims_is_a_conflict_and_nvdec0_is_skipped_when_disabled()
    {
        using var driver = NvidiaRim.Parse(Build(ActiveFromReport(7, 35)));
        var vbiosActive = ActiveFromReport(7);
        using var vbios = NvidiaRim.Parse(Build(vbiosActive));
        var result = RimComparison.Compare(_report, driver, vbios, 0x55);
        Assert.Equal([7], result.Conflicts);
        Assert.Equal([35], result.Skipped);
        Assert.False(result.Success);
    }

    [Fact]
    public void Own_rim_edited_after_signing_fails_its_signature()
    {
        var xml = Encoding.UTF8.GetString(Build(ActiveFromReport(0)));
        var edited = xml.Replace("colloquialVersion=\"1.0.test\"", "colloquialVersion=\"1.0.tesu\"", StringComparison.Ordinal);
        Assert.NotEqual(xml, edited);
        using var rim = NvidiaRim.Parse(Encoding.UTF8.GetBytes(edited));
        Assert.NotNull(rim.VerifySignature());
    }

    [Fact]
    public void Rim_signed_by_a_key_other_than_the_embedded_signer_fails()
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var xml = RimDocumentBuilder.Build("GH100", "1.0.test", "GPU", ActiveFromReport(0).ToDictionary(kv => kv.Key, kv => (IReadOnlyList<byte[]>)kv.Value), other, [_signer, _root]);
        using var rim = NvidiaRim.Parse(xml);
        Assert.NotNull(rim.VerifySignature());
    }

    public void Dispose()
    {
        _root.Dispose();
        _signer.Dispose();
        _rootKey.Dispose();
        _signerKey.Dispose();
    }

    private Dictionary<int, List<byte[]>> ActiveFromReport(params int[] indices) =>
        indices.ToDictionary(i => i, i => new List<byte[]> { _report.FindBlock(i + 1)!.Value.ToArray() });

    private byte[] Build(Dictionary<int, List<byte[]>> active) =>
        RimDocumentBuilder.Build("GH100", "1.0.test", "GPU", active.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<byte[]>)kv.Value), _signerKey, [_signer, _root]);
}
