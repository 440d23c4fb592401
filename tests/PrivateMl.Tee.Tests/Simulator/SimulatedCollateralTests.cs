using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Tee.Tests.Simulator;

public sealed class SimulatedCollateralTests
{
    [Fact]
    public void Tcb_info_and_qe_identity_have_the_key_structure_of_the_real_sample()
    {
        var real = JsonSerializer.Deserialize<DcapCollateral>(SharedTestData.ReadText("tdx/dcap-qvl/tdx_quote_collateral.json"))!;
        using var platform = Simulators.Platform();
        var simulated = platform.CreateCollateral(Simulators.Now);

        Assert.Equal(KeyPaths(real.TcbInfo), KeyPaths(simulated.TcbInfo));
        Assert.Equal(KeyPaths(real.QeIdentity), KeyPaths(simulated.QeIdentity));
        Assert.Equal(TopKeys(real.TcbInfo), TopKeys(simulated.TcbInfo));
        Assert.Equal(TopKeys(real.QeIdentity), TopKeys(simulated.QeIdentity));
    }

    [Fact]
    public void Signatures_verify_over_the_exact_json_bytes_with_the_tcb_signing_key()
    {
        using var platform = Simulators.Platform();
        var collateral = platform.CreateCollateral(Simulators.Now);

        var chain = Chain(collateral.TcbInfoIssuerChain);
        Assert.Equal(2, chain.Length);
        Assert.Equal(platform.Pki.TcbSigningCertificate.RawData, chain[0].RawData);
        Assert.Equal(platform.Pki.RootCertificate.RawData, chain[1].RawData);
        Assert.True(Verifies(chain[0], collateral.TcbInfo, collateral.TcbInfoSignature));
        Assert.True(Verifies(chain[0], collateral.QeIdentity, collateral.QeIdentitySignature));
        Assert.Equal(64, collateral.TcbInfoSignature.Length);
        Assert.False(Verifies(chain[0], collateral.TcbInfo + " ", collateral.TcbInfoSignature));
    }

    [Fact]
    public void Default_collateral_matches_the_platform_and_is_current()
    {
        using var platform = Simulators.Platform();
        var collateral = platform.CreateCollateral(Simulators.Now);
        using var tcb = JsonDocument.Parse(collateral.TcbInfo);
        using var qe = JsonDocument.Parse(collateral.QeIdentity);
        var t = tcb.RootElement;

        Assert.Equal("TDX", t.GetProperty("id").GetString());
        Assert.Equal(3, t.GetProperty("version").GetInt32());
        Assert.Equal(Convert.ToHexString(platform.Pki.Platform.Fmspc.Span), t.GetProperty("fmspc").GetString());
        Assert.Equal("0000", t.GetProperty("pceId").GetString());
        Assert.True(DateTimeOffset.Parse(t.GetProperty("issueDate").GetString()!, System.Globalization.CultureInfo.InvariantCulture) <= Simulators.Now);
        Assert.True(DateTimeOffset.Parse(t.GetProperty("nextUpdate").GetString()!, System.Globalization.CultureInfo.InvariantCulture) > Simulators.Now);
        var first = t.GetProperty("tcbLevels")[0];
        Assert.Equal("UpToDate", first.GetProperty("tcbStatus").GetString());
        Assert.Equal(
            platform.Pki.Platform.SgxTcbComponents.ToArray(),
            first.GetProperty("tcb").GetProperty("sgxtcbcomponents").EnumerateArray().Select(c => (byte)c.GetProperty("svn").GetInt32()).ToArray());
        Assert.Equal(
            platform.Profile.TeeTcbSvn.ToArray(),
            first.GetProperty("tcb").GetProperty("tdxtcbcomponents").EnumerateArray().Select(c => (byte)c.GetProperty("svn").GetInt32()).ToArray());
        Assert.Equal("TDX_01", t.GetProperty("tdxModuleIdentities")[0].GetProperty("id").GetString());

        var q = qe.RootElement;
        Assert.Equal("TD_QE", q.GetProperty("id").GetString());
        Assert.Equal(2, q.GetProperty("version").GetInt32());
        Assert.Equal(Convert.ToHexString(platform.QuotingEnclave.Options.MrSigner.Span), q.GetProperty("mrsigner").GetString());
        Assert.Equal("11000000000000000000000000000000", q.GetProperty("attributes").GetString());
        Assert.Equal(platform.QuotingEnclave.Options.IsvSvn, q.GetProperty("tcbLevels")[0].GetProperty("tcb").GetProperty("isvsvn").GetInt32());
    }

    [Theory]
    [InlineData(TcbStatus.OutOfDate)]
    [InlineData(TcbStatus.SWHardeningNeeded)]
    [InlineData(TcbStatus.ConfigurationNeeded)]
    [InlineData(TcbStatus.Revoked)]
    public void Platform_level_can_say_any_status_with_advisories(TcbStatus status)
    {
        using var platform = Simulators.Platform();
        var options = new SimulatedCollateralOptions
        {
            TcbInfo = new TcbInfoOptions { Levels = TcbInfoOptions.LevelsForPlatformStatus(status, "INTEL-SA-00999", "INTEL-DOC-00001") },
        };

        using var tcb = JsonDocument.Parse(platform.CreateCollateral(Simulators.Now, options).TcbInfo);
        var levels = tcb.RootElement.GetProperty("tcbLevels");

        Assert.Equal(2, levels.GetArrayLength());
        Assert.Equal("UpToDate", levels[0].GetProperty("tcbStatus").GetString());
        Assert.True(levels[0].GetProperty("tcb").GetProperty("pcesvn").GetInt32() > platform.Pki.Platform.PceSvn);
        Assert.Equal(status.ToString(), levels[1].GetProperty("tcbStatus").GetString());
        Assert.Equal(platform.Pki.Platform.PceSvn, levels[1].GetProperty("tcb").GetProperty("pcesvn").GetInt32());
        Assert.Equal(["INTEL-SA-00999", "INTEL-DOC-00001"], levels[1].GetProperty("advisoryIDs").EnumerateArray().Select(a => a.GetString()!).ToArray());
    }

    [Fact]
    public void Windows_overrides_and_crls_follow_the_options()
    {
        using var platform = Simulators.Platform();
        var past = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var options = new SimulatedCollateralOptions
        {
            TcbInfo = new TcbInfoOptions { NextUpdate = past, Fmspc = new byte[6] },
            QeIdentity = new QeIdentityOptions { Id = "QE", CorruptSignature = true },
            PckCrl = new SimulatedCrlOptions { RevokedSerials = [platform.Pki.PckCertificate.SerialNumberBytes], NextUpdate = past.AddDays(1), ThisUpdate = past },
        };

        var collateral = platform.CreateCollateral(Simulators.Now, options);

        Assert.Contains("\"nextUpdate\":\"2020-01-01T00:00:00Z\"", collateral.TcbInfo, StringComparison.Ordinal);
        Assert.Contains("\"fmspc\":\"000000000000\"", collateral.TcbInfo, StringComparison.Ordinal);
        Assert.Contains("\"id\":\"QE\"", collateral.QeIdentity, StringComparison.Ordinal);
        Assert.False(Verifies(platform.Pki.TcbSigningCertificate, collateral.QeIdentity, collateral.QeIdentitySignature));
        Assert.True(Verifies(platform.Pki.TcbSigningCertificate, collateral.TcbInfo, collateral.TcbInfoSignature));
        var crl = CertificateRevocationListBuilder.Load(collateral.PckCrl, out _);
        Assert.True(crl.RemoveEntry(platform.Pki.PckCertificate.SerialNumberBytes.Span));
        Assert.True(SimulatedPkiTests.CrlSignatureVerifies(collateral.PckCrl, platform.Pki.PckCaCertificate));
        Assert.True(SimulatedPkiTests.CrlSignatureVerifies(collateral.RootCaCrl, platform.Pki.RootCertificate));
    }

    [Fact]
    public void Collateral_round_trips_through_the_dcap_qvl_json_shape()
    {
        using var platform = Simulators.Platform();
        var collateral = platform.CreateCollateral(Simulators.Now);

        var json = JsonSerializer.Serialize(collateral);
        var back = JsonSerializer.Deserialize<DcapCollateral>(json)!;

        Assert.Equal(collateral.TcbInfo, back.TcbInfo);
        Assert.Equal(collateral.PckCrl, back.PckCrl);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(
            ["pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info", "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature"],
            document.RootElement.EnumerateObject().Select(p => p.Name).ToArray());
    }

    internal static X509Certificate2[] Chain(string pem)
    {
        var collection = new X509Certificate2Collection();
        collection.ImportFromPem(pem);
        return [.. collection];
    }

    internal static bool Verifies(X509Certificate2 signer, string json, byte[] signature)
    {
        using var key = signer.GetECDsaPublicKey()!;
        return key.VerifyData(Encoding.UTF8.GetBytes(json), signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    private static string[] TopKeys(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
    }

    /// <summary>Every key path present (arrays collapsed), so level counts and optional labels do not matter.</summary>
    private static SortedSet<string> KeyPaths(string json)
    {
        using var document = JsonDocument.Parse(json);
        var paths = new SortedSet<string>(StringComparer.Ordinal);
        Collect(document.RootElement, "", paths);
        return paths;
    }

    private static void Collect(JsonElement element, string path, SortedSet<string> paths)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    var child = path + "/" + property.Name;
                    if (property.Name is "advisoryIDs" or "category" or "type")
                    {
                        continue; // optional members, present only on some levels/components
                    }

                    paths.Add(child);
                    Collect(property.Value, child, paths);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    Collect(item, path + "[]", paths);
                }

                break;
        }
    }
}
