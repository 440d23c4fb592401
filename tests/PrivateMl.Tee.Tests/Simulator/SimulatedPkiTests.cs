using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Tee.Tests.Simulator;

public sealed class SimulatedPkiTests
{
    private const string SgxOid = "1.2.840.113741.1.13.1";

    [Fact]
    public void Root_name_says_simulated_and_is_self_signed()
    {
        using var pki = SimulatedPki.Create(new SimulatedPkiOptions(), Simulators.Now);

        Assert.Contains("SIMULATED", pki.RootCertificate.Subject, StringComparison.Ordinal);
        Assert.Contains("SGX Root CA", pki.RootCertificate.Subject, StringComparison.Ordinal);
        Assert.Equal(pki.RootCertificate.Subject, pki.RootCertificate.Issuer);
        Assert.All([pki.PckCaCertificate, pki.PckCertificate, pki.TcbSigningCertificate],
            c => Assert.Contains("SIMULATED", c.Subject, StringComparison.Ordinal));
    }

    [Fact]
    public void Pck_and_tcb_chains_build_to_the_simulated_root_only()
    {
        using var pki = SimulatedPki.Create(new SimulatedPkiOptions(), Simulators.Now);

        Assert.True(BuildChain(pki.PckCertificate, pki.RootCertificate, pki.PckCaCertificate));
        Assert.True(BuildChain(pki.TcbSigningCertificate, pki.RootCertificate));

        using var intelRoot = X509CertificateLoader.LoadCertificate(SharedTestData.ReadBytes("trust/intel-sgx-root-ca.der"));
        Assert.False(BuildChain(pki.PckCertificate, intelRoot, pki.PckCaCertificate));
    }

    [Fact]
    public void Certificates_have_intel_extensions_and_constraints()
    {
        using var pki = SimulatedPki.Create(new SimulatedPkiOptions(), Simulators.Now);

        var rootBc = pki.RootCertificate.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(rootBc.CertificateAuthority);
        Assert.Equal(1, rootBc.PathLengthConstraint);
        var caBc = pki.PckCaCertificate.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(caBc.CertificateAuthority);
        Assert.Equal(0, caBc.PathLengthConstraint);
        var leafBc = pki.PckCertificate.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.False(leafBc.CertificateAuthority);
        Assert.True(leafBc.Critical);

        var leafKu = pki.PckCertificate.Extensions.OfType<X509KeyUsageExtension>().Single();
        Assert.Equal(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, leafKu.KeyUsages);
        Assert.Equal("1.2.840.10045.4.3.2", pki.PckCertificate.SignatureAlgorithm.Value); // ecdsa-with-SHA256

        var leafAki = pki.PckCertificate.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().Single();
        var caSki = pki.PckCaCertificate.Extensions.OfType<X509SubjectKeyIdentifierExtension>().Single();
        Assert.Equal(caSki.SubjectKeyIdentifierBytes.ToArray(), leafAki.KeyIdentifier!.Value.ToArray());

        var dp = pki.PckCertificate.Extensions.Single(e => e.Oid!.Value == "2.5.29.31");
        Assert.Contains("/sgx/certification/v4/pckcrl?ca=platform&encoding=der", System.Text.Encoding.ASCII.GetString(dp.RawData), StringComparison.Ordinal);
    }

    [Fact]
    public void Sgx_extension_has_the_same_asn1_shape_as_a_real_platform_ca_pck()
    {
        var real = new QuoteBytes(SharedTestData.ReadBytes("tdx/dcap-qvl/tdx_quote")).PckChain()[0];
        using var pki = SimulatedPki.Create(new SimulatedPkiOptions(), Simulators.Now);

        var realShape = Shape(real);
        var simulatedShape = Shape(pki.PckCertificate);

        Assert.Equal(realShape, simulatedShape);
        Assert.Equal(7, TopLevelEntries(pki.PckCertificate));
        Assert.Equal(
            real.Extensions.Select(e => e.Oid!.Value).ToArray(),
            pki.PckCertificate.Extensions.Select(e => e.Oid!.Value).ToArray());
    }

    [Fact]
    public void Processor_ca_pck_has_five_entries_and_the_processor_crl_url()
    {
        var options = new SimulatedPkiOptions { Platform = new PckPlatformInfo { CaKind = PckCaKind.Processor, SgxType = SgxType.Standard } };
        using var pki = SimulatedPki.Create(options, Simulators.Now);

        Assert.Equal(5, TopLevelEntries(pki.PckCertificate));
        Assert.Contains("Processor CA", pki.PckCaCertificate.Subject, StringComparison.Ordinal);
        Assert.EndsWith("ca=processor&encoding=der", pki.PckCrlUrl, StringComparison.Ordinal);
    }

    [Fact]
    public void Sgx_extension_carries_the_platform_values()
    {
        var platform = new PckPlatformInfo { Fmspc = new byte[] { 1, 2, 3, 4, 5, 6 }, PceSvn = 300, SgxTcbComponents = Enumerable.Range(250, 16).Select(i => (byte)i).ToArray() };
        using var pki = SimulatedPki.Create(new SimulatedPkiOptions { Platform = platform }, Simulators.Now);

        var values = Values(pki.PckCertificate);

        Assert.Equal("010203040506", values[".4"]);
        Assert.Equal("0000", values[".3"]);
        Assert.Equal(Convert.ToHexStringLower(platform.SgxTcbComponents.Span), values[".2.18"]);
        Assert.Equal("300", values[".2.17"]);
        Assert.Equal("255", values[".2.6"]); // 250 + 5: two-byte DER INTEGER 00ff
    }

    [Fact]
    public void Certificate_defects_are_applied()
    {
        var expired = Simulators.Now.AddYears(-1);
        var options = new SimulatedPkiOptions
        {
            PckLeaf = new CertificateDefects { NotBefore = expired.AddYears(-1), NotAfter = expired, CertificateAuthority = true },
            PckCa = new CertificateDefects { CorruptSignature = true },
            TcbSigning = new CertificateDefects { SignedByUnrelatedKey = true, IssuerCommonName = "Someone Else" },
            SgxExtension = new SgxExtensionDefects { OmitFmspc = true },
        };
        using var pki = SimulatedPki.Create(options, Simulators.Now);

        Assert.Equal(expired.UtcDateTime, pki.PckCertificate.NotAfter.ToUniversalTime());
        Assert.True(pki.PckCertificate.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        Assert.False(SignedBy(pki.PckCaCertificate, pki.RootCertificate));
        Assert.False(SignedBy(pki.TcbSigningCertificate, pki.RootCertificate));
        Assert.Contains("Someone Else", pki.TcbSigningCertificate.Issuer, StringComparison.Ordinal);
        Assert.False(Values(pki.PckCertificate).ContainsKey(".4"));
        Assert.True(SignedBy(pki.PckCertificate, pki.PckCaCertificate));
    }

    [Fact]
    public void Crls_are_signed_by_their_issuer_and_list_requested_serials()
    {
        using var pki = SimulatedPki.Create(new SimulatedPkiOptions(), Simulators.Now);
        var revoked = new SimulatedCrlOptions { RevokedSerials = [pki.PckCertificate.SerialNumberBytes] };

        var pckCrl = pki.CreatePckCrl(revoked, Simulators.Now, Simulators.Now.AddDays(30));
        var rootCrl = pki.CreateRootCaCrl(SimulatedCrlOptions.Default, Simulators.Now, Simulators.Now.AddDays(30));

        var loaded = CertificateRevocationListBuilder.Load(pckCrl, out BigInteger number);
        Assert.Equal(BigInteger.One, number);
        Assert.True(loaded.RemoveEntry(pki.PckCertificate.SerialNumberBytes.Span));
        var emptyRoot = CertificateRevocationListBuilder.Load(rootCrl, out _);
        Assert.False(emptyRoot.RemoveEntry(pki.PckCaCertificate.SerialNumberBytes.Span));

        Assert.True(CrlSignatureVerifies(pckCrl, pki.PckCaCertificate));
        Assert.True(CrlSignatureVerifies(rootCrl, pki.RootCertificate));
        Assert.False(CrlSignatureVerifies(pckCrl, pki.RootCertificate));
        var corrupt = pki.CreateRootCaCrl(new SimulatedCrlOptions { CorruptSignature = true }, Simulators.Now, Simulators.Now.AddDays(30));
        Assert.False(CrlSignatureVerifies(corrupt, pki.RootCertificate));
    }

    [Fact]
    public void Save_and_load_keep_the_identity_with_owner_only_files()
    {
        var directory = Simulators.TempDirectory();
        try
        {
            using var pki = SimulatedPki.Create(new SimulatedPkiOptions(), Simulators.Now);
            pki.Save(directory);
            using var loaded = SimulatedPki.Load(directory);

            Assert.Equal(pki.RootCertificate.RawData, loaded.RootCertificate.RawData);
            Assert.Equal(pki.PckCertificate.RawData, loaded.PckCertificate.RawData);
            Assert.Equal(pki.Platform.Fmspc.ToArray(), loaded.Platform.Fmspc.ToArray());
            if (!OperatingSystem.IsWindows())
            {
                foreach (var file in Directory.GetFiles(directory))
                {
                    Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                }
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    internal static bool BuildChain(X509Certificate2 leaf, X509Certificate2 root, params X509Certificate2[] intermediates) =>
        CustomRootChain.Build(leaf, root, intermediates, Simulators.Now).Built;

    internal static bool SignedBy(X509Certificate2 certificate, X509Certificate2 issuer) => SignedBy(certificate.RawData, issuer);

    internal static bool SignedBy(byte[] der, X509Certificate2 issuer)
    {
        var (tbs, signature) = SplitSigned(der);
        using var key = issuer.GetECDsaPublicKey()!;
        return key.VerifyData(tbs, signature, System.Security.Cryptography.HashAlgorithmName.SHA256,
            System.Security.Cryptography.DSASignatureFormat.Rfc3279DerSequence);
    }

    internal static bool CrlSignatureVerifies(byte[] crl, X509Certificate2 issuer) => SignedBy(crl, issuer);

    /// <summary>Splits a SEQUENCE { tbs, algorithm, BIT STRING signature } (certificate or CRL).</summary>
    internal static (byte[] Tbs, byte[] Signature) SplitSigned(byte[] der)
    {
        var reader = new AsnReader(der, AsnEncodingRules.DER).ReadSequence();
        var tbs = reader.ReadEncodedValue().ToArray();
        reader.ReadSequence();
        var signature = reader.ReadBitString(out _);
        return (tbs, signature);
    }

    private static List<string> Shape(X509Certificate2 certificate)
    {
        var shape = new List<string>();
        var reader = new AsnReader(certificate.Extensions[SgxOid]!.RawData, AsnEncodingRules.DER);
        Walk(reader.ReadSequence(), shape);
        return shape;
    }

    private static void Walk(AsnReader entries, List<string> shape)
    {
        while (entries.HasData)
        {
            var entry = entries.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            var tag = entry.PeekTag();
            shape.Add($"{oid[SgxOid.Length..]}:{tag.TagValue}");
            if (tag.TagValue == (int)UniversalTagNumber.Sequence)
            {
                Walk(entry.ReadSequence(), shape);
            }
        }
    }

    private static int TopLevelEntries(X509Certificate2 certificate)
    {
        var entries = new AsnReader(certificate.Extensions[SgxOid]!.RawData, AsnEncodingRules.DER).ReadSequence();
        var count = 0;
        while (entries.HasData)
        {
            entries.ReadEncodedValue();
            count++;
        }

        return count;
    }

    private static Dictionary<string, string> Values(X509Certificate2 certificate)
    {
        var values = new Dictionary<string, string>();
        Collect(new AsnReader(certificate.Extensions[SgxOid]!.RawData, AsnEncodingRules.DER).ReadSequence(), values);
        return values;
    }

    private static void Collect(AsnReader entries, Dictionary<string, string> values)
    {
        while (entries.HasData)
        {
            var entry = entries.ReadSequence();
            var oid = entry.ReadObjectIdentifier()[SgxOid.Length..];
            var tag = entry.PeekTag();
            if (tag.TagValue == (int)UniversalTagNumber.Sequence)
            {
                Collect(entry.ReadSequence(), values);
            }
            else if (tag.TagValue == (int)UniversalTagNumber.OctetString)
            {
                values[oid] = Convert.ToHexStringLower(entry.ReadOctetString());
            }
            else if (tag.TagValue == (int)UniversalTagNumber.Integer)
            {
                values[oid] = entry.ReadInteger().ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            else
            {
                values[oid] = Convert.ToHexStringLower(entry.ReadEncodedValue().Span);
            }
        }
    }
}
