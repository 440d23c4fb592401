using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// The simulated Intel PKI: a self-signed root ("PrivateMl SIMULATED SGX Root CA"), a PCK Platform (or Processor) CA, a PCK
/// leaf carrying the SGX extension, and a TCB Signing certificate issued by the root, all P-256 / ECDSA-SHA256 with the
/// same extensions as Intel's. No default policy trusts this root; it is for tests and simulated nodes only.
/// </summary>
public sealed class SimulatedPki : IDisposable
{
    public const string RootCommonName = "PrivateMl SIMULATED SGX Root CA";
    public const string PlatformCaCommonName = "PrivateMl SIMULATED SGX PCK Platform CA";
    public const string ProcessorCaCommonName = "PrivateMl SIMULATED SGX PCK Processor CA";
    public const string PckCommonName = "PrivateMl SIMULATED SGX PCK Certificate";
    public const string TcbSigningCommonName = "PrivateMl SIMULATED SGX TCB Signing";
    public const string Organization = "PrivateMl SIMULATED (not Intel)";

    private const string RootKeyFile = "root-ca.key";
    private const string RootCertFile = "root-ca.crt";
    private const string PckCaKeyFile = "pck-ca.key";
    private const string PckCaCertFile = "pck-ca.crt";
    private const string PckKeyFile = "pck.key";
    private const string PckCertFile = "pck.crt";
    private const string TcbKeyFile = "tcb-signing.key";
    private const string TcbCertFile = "tcb-signing.crt";
    private const string PlatformFile = "platform.json";

    private readonly ECDsa _rootKey;
    private readonly ECDsa _pckCaKey;
    private readonly ECDsa _pckKey;
    private readonly ECDsa _tcbSigningKey;

    private SimulatedPki(
        PckPlatformInfo platform,
        string crlBaseUrl,
        (X509Certificate2 Cert, ECDsa Key) root,
        (X509Certificate2 Cert, ECDsa Key) pckCa,
        (X509Certificate2 Cert, ECDsa Key) pck,
        (X509Certificate2 Cert, ECDsa Key) tcbSigning)
    {
        Platform = platform;
        CrlBaseUrl = crlBaseUrl;
        (RootCertificate, _rootKey) = root;
        (PckCaCertificate, _pckCaKey) = pckCa;
        (PckCertificate, _pckKey) = pck;
        (TcbSigningCertificate, _tcbSigningKey) = tcbSigning;
    }

    public PckPlatformInfo Platform { get; }

    public string CrlBaseUrl { get; }

    /// <summary>The simulated root: trust it explicitly to accept simulated evidence.</summary>
    public X509Certificate2 RootCertificate { get; }

    public X509Certificate2 PckCaCertificate { get; }

    public X509Certificate2 PckCertificate { get; }

    public X509Certificate2 TcbSigningCertificate { get; }

    /// <summary>PCK chain, leaf first (leaf, PCK CA, root), as in the quote's type-5 certification data.</summary>
    public string PckCertificateChainPem => ToPem(PckCertificate, PckCaCertificate, RootCertificate);

    /// <summary>Issuer chain of the PCK CRL (PCK CA, root).</summary>
    public string PckCrlIssuerChainPem => ToPem(PckCaCertificate, RootCertificate);

    /// <summary>Issuer chain of TCB info and QE identity (TCB Signing, root).</summary>
    public string TcbSigningChainPem => ToPem(TcbSigningCertificate, RootCertificate);

    /// <summary>The <c>ca</c> query value of this PKI's PCK CRL: "platform" or "processor".</summary>
    public string PckCaQueryValue => Platform.CaKind == PckCaKind.Platform ? "platform" : "processor";

    /// <summary>URL of the PCK CRL, as written in the PCK leaf's CRL distribution point.</summary>
    public string PckCrlUrl => $"{CrlBaseUrl.TrimEnd('/')}/sgx/certification/v4/pckcrl?ca={PckCaQueryValue}&encoding=der";

    /// <summary>URL of the root CA CRL, as written in the root's and its children's CRL distribution points.</summary>
    public string RootCaCrlUrl => $"{CrlBaseUrl.TrimEnd('/')}/SimulatedSGXRootCA.der";

    /// <summary>Builds a fresh simulated PKI issued at <paramref name="now"/>.</summary>
    public static SimulatedPki Create(SimulatedPkiOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Platform.Validate();
        var platform = options.Platform;
        var baseUrl = options.CrlBaseUrl.TrimEnd('/');
        var rootCrlUrl = $"{baseUrl}/SimulatedSGXRootCA.der";
        var caQuery = platform.CaKind == PckCaKind.Platform ? "platform" : "processor";
        var pckCrlUrl = $"{baseUrl}/sgx/certification/v4/pckcrl?ca={caQuery}&encoding=der";
        var notBefore = TruncateToSeconds(now - options.Backdate);

        var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootSki = SkiOf(rootKey);
        var root = Issue(
            new IssueSpec(RootCommonName, rootKey, RootCommonName, rootKey, rootSki, CertificateAuthority: true, PathLength: 1,
                X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, rootCrlUrl, SgxExtension: null,
                notBefore, notBefore + options.RootValidity),
            options.Root);

        var caName = platform.CaKind == PckCaKind.Platform ? PlatformCaCommonName : ProcessorCaCommonName;
        var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pckCa = Issue(
            new IssueSpec(caName, caKey, RootCommonName, rootKey, rootSki, CertificateAuthority: true, PathLength: 0,
                X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, rootCrlUrl, SgxExtension: null,
                notBefore, notBefore + options.CaValidity),
            options.PckCa);

        var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var sgxExtension = options.SgxExtension.OmitExtension ? null : SgxExtensionWriter.Encode(platform, options.SgxExtension);
        var leaf = Issue(
            new IssueSpec(PckCommonName, leafKey, caName, caKey, SkiOf(caKey), CertificateAuthority: false, PathLength: null,
                X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, pckCrlUrl, sgxExtension,
                notBefore, notBefore + options.LeafValidity),
            options.PckLeaf);

        var tcbKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var tcb = Issue(
            new IssueSpec(TcbSigningCommonName, tcbKey, RootCommonName, rootKey, rootSki, CertificateAuthority: false, PathLength: null,
                X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, rootCrlUrl, SgxExtension: null,
                notBefore, notBefore + options.LeafValidity),
            options.TcbSigning);

        return new SimulatedPki(platform, baseUrl, (root, rootKey), (pckCa, caKey), (leaf, leafKey), (tcb, tcbKey));
    }

    /// <summary>The root CA CRL (DER), signed by the simulated root; lists PCK CA / TCB Signing serials if asked.</summary>
    public byte[] CreateRootCaCrl(SimulatedCrlOptions options, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate) =>
        BuildCrl(options, RootCommonName, _rootKey, RootCertificate, thisUpdate, nextUpdate);

    /// <summary>The PCK CRL (DER), signed by the PCK CA; lists the PCK leaf if its serial is in the options.</summary>
    public byte[] CreatePckCrl(SimulatedCrlOptions options, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate) =>
        BuildCrl(options, PckCaCertificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false), _pckCaKey, PckCaCertificate, thisUpdate, nextUpdate);

    /// <summary>PEM of certificates in the given order, each ending in a newline (the shape of Intel's chains).</summary>
    public static string ToPem(params X509Certificate2[] certificates)
    {
        ArgumentNullException.ThrowIfNull(certificates);
        var builder = new StringBuilder();
        foreach (var certificate in certificates)
        {
            builder.Append(PemEncoding.Write("CERTIFICATE", certificate.RawData)).Append('\n');
        }

        return builder.ToString();
    }

    /// <summary>Signs with the PCK leaf key: ECDSA P-256 over SHA-256, 64-byte r‖s (e.g. a hand-made QE report).</summary>
    public byte[] SignWithPckKey(ReadOnlySpan<byte> data) =>
        _pckKey.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>Signs with the TCB Signing key: ECDSA P-256 over SHA-256, 64-byte r‖s (e.g. hand-edited TCB info JSON).</summary>
    public byte[] SignWithTcbSigningKey(ReadOnlySpan<byte> data) =>
        _tcbSigningKey.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>Writes keys (PKCS#8 PEM), certificates (PEM) and the platform description, every file mode 0600.</summary>
    public void Save(string directory)
    {
        StateFiles.EnsureDirectory(directory);
        StateFiles.WriteText(Path.Combine(directory, RootKeyFile), _rootKey.ExportPkcs8PrivateKeyPem());
        StateFiles.WriteText(Path.Combine(directory, RootCertFile), ToPem(RootCertificate));
        StateFiles.WriteText(Path.Combine(directory, PckCaKeyFile), _pckCaKey.ExportPkcs8PrivateKeyPem());
        StateFiles.WriteText(Path.Combine(directory, PckCaCertFile), ToPem(PckCaCertificate));
        StateFiles.WriteText(Path.Combine(directory, PckKeyFile), _pckKey.ExportPkcs8PrivateKeyPem());
        StateFiles.WriteText(Path.Combine(directory, PckCertFile), ToPem(PckCertificate));
        StateFiles.WriteText(Path.Combine(directory, TcbKeyFile), _tcbSigningKey.ExportPkcs8PrivateKeyPem());
        StateFiles.WriteText(Path.Combine(directory, TcbCertFile), ToPem(TcbSigningCertificate));
        StateFiles.WriteText(Path.Combine(directory, PlatformFile), SimulatorJson.SerializePlatform(Platform, CrlBaseUrl));
    }

    /// <summary>True when <paramref name="directory"/> holds a saved PKI.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, PlatformFile));

    /// <summary>Loads a PKI written by <see cref="Save"/>.</summary>
    public static SimulatedPki Load(string directory)
    {
        var (platform, baseUrl) = SimulatorJson.DeserializePlatform(File.ReadAllText(Path.Combine(directory, PlatformFile)));
        return new SimulatedPki(
            platform,
            baseUrl,
            LoadPair(directory, RootCertFile, RootKeyFile),
            LoadPair(directory, PckCaCertFile, PckCaKeyFile),
            LoadPair(directory, PckCertFile, PckKeyFile),
            LoadPair(directory, TcbCertFile, TcbKeyFile));
    }

    public void Dispose()
    {
        RootCertificate.Dispose();
        PckCaCertificate.Dispose();
        PckCertificate.Dispose();
        TcbSigningCertificate.Dispose();
        _rootKey.Dispose();
        _pckCaKey.Dispose();
        _pckKey.Dispose();
        _tcbSigningKey.Dispose();
    }

    private static (X509Certificate2, ECDsa) LoadPair(string directory, string certFile, string keyFile)
    {
        var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(directory, certFile)));
        var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(Path.Combine(directory, keyFile)));
        return (certificate, key);
    }

    private sealed record IssueSpec(
        string SubjectCommonName,
        ECDsa SubjectKey,
        string IssuerCommonName,
        ECDsa IssuerKey,
        X509SubjectKeyIdentifierExtension IssuerSki,
        bool CertificateAuthority,
        int? PathLength,
        X509KeyUsageFlags KeyUsage,
        string CrlDistributionPoint,
        byte[]? SgxExtension,
        DateTimeOffset NotBefore,
        DateTimeOffset NotAfter);

    private static X509Certificate2 Issue(IssueSpec spec, CertificateDefects defects)
    {
        var request = new CertificateRequest(Name(defects.SubjectCommonName ?? spec.SubjectCommonName), spec.SubjectKey, HashAlgorithmName.SHA256);
        var ski = new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false);
        var isCa = defects.CertificateAuthority ?? spec.CertificateAuthority;

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(spec.IssuerSki));
        request.CertificateExtensions.Add(CertificateRevocationListBuilder.BuildCrlDistributionPointExtension([spec.CrlDistributionPoint]));
        request.CertificateExtensions.Add(ski);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(spec.KeyUsage, critical: true));
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(
            isCa, hasPathLengthConstraint: isCa && spec.PathLength.HasValue, spec.PathLength ?? 0, critical: true));
        if (spec.SgxExtension is not null)
        {
            request.CertificateExtensions.Add(new X509Extension(SgxExtensionWriter.ExtensionOid, spec.SgxExtension, critical: false));
        }

        using var unrelated = defects.SignedByUnrelatedKey ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : null;
        var generator = X509SignatureGenerator.CreateForECDsa(unrelated ?? spec.IssuerKey);
        var notBefore = defects.NotBefore ?? spec.NotBefore;
        var notAfter = defects.NotAfter ?? spec.NotAfter;
        using var certificate = request.Create(
            Name(defects.IssuerCommonName ?? spec.IssuerCommonName), generator, notBefore, notAfter, NewSerial());

        var der = certificate.RawData;
        if (defects.CorruptSignature)
        {
            CorruptLastSignatureByte(der);
        }

        return X509CertificateLoader.LoadCertificate(der);
    }

    private byte[] BuildCrl(
        SimulatedCrlOptions options, string issuerCommonName, ECDsa issuerKey, X509Certificate2 issuer, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate)
    {
        var builder = new CertificateRevocationListBuilder();
        var effectiveThisUpdate = options.ThisUpdate ?? thisUpdate;
        foreach (var serial in options.RevokedSerials)
        {
            builder.AddEntry(serial.Span, effectiveThisUpdate, X509RevocationReason.KeyCompromise);
        }

        using var unrelated = options.SignedByUnrelatedKey ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : null;
        var ski = issuer.Extensions.OfType<X509SubjectKeyIdentifierExtension>().Single();
        var der = builder.Build(
            Name(options.IssuerCommonName ?? issuerCommonName),
            X509SignatureGenerator.CreateForECDsa(unrelated ?? issuerKey),
            BigInteger.One,
            TruncateToSeconds(options.NextUpdate ?? nextUpdate),
            HashAlgorithmName.SHA256,
            X509AuthorityKeyIdentifierExtension.CreateFromSubjectKeyIdentifier(ski),
            TruncateToSeconds(effectiveThisUpdate));
        if (options.CorruptSignature)
        {
            CorruptLastSignatureByte(der);
        }

        return der;
    }

    internal static X500DistinguishedName Name(string commonName)
    {
        var builder = new X500DistinguishedNameBuilder();
        builder.AddCommonName(commonName);
        builder.AddOrganizationName(Organization);
        builder.AddLocalityName("Simulated");
        builder.AddStateOrProvinceName("SIM");
        builder.AddCountryOrRegion("ZZ");
        return builder.Build();
    }

    /// <summary>The last byte of a certificate or CRL is the last byte of the signature's s: flipping it keeps the DER valid.</summary>
    internal static void CorruptLastSignatureByte(byte[] der) => der[^1] ^= 0x01;

    private static X509SubjectKeyIdentifierExtension SkiOf(ECDsa key) =>
        new(new PublicKey(key), critical: false);

    private static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(20);
        serial[0] &= 0x7F;
        serial[0] |= 0x01;
        return serial;
    }

    internal static DateTimeOffset TruncateToSeconds(DateTimeOffset value) =>
        new(value.UtcTicks - (value.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
}
