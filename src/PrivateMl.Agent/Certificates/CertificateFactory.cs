using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace PrivateMl.Agent.Certificates;

/// <summary>What a leaf certificate should say (GetTlsKey / Tappd.DeriveKey arguments).</summary>
public sealed class LeafCertificateRequest
{
    public string Subject { get; init; } = "";

    public IReadOnlyList<string> AltNames { get; init; } = [];

    public bool ServerAuth { get; init; }

    public bool ClientAuth { get; init; }

    public DateTimeOffset NotBefore { get; init; }

    public DateTimeOffset NotAfter { get; init; }

    /// <summary>RA-TLS quote (extension .1.1); null for none.</summary>
    public byte[]? Quote { get; init; }

    /// <summary>RA-TLS event log JSON (extension .1.2); null for none.</summary>
    public byte[]? EventLogJson { get; init; }

    /// <summary>Usage string (extension .1.4); null for none.</summary>
    public string? Usage { get; init; }

    /// <summary>20-byte app id (extension .1.3); null for none.</summary>
    public byte[]? AppId { get; init; }
}

/// <summary>
/// Builds certificates in the shape dstack's rcgen produces (dstack.md §3.2): ECDSA-SHA256, notBefore 1975-01-01,
/// serial = SHA-256(uncompressed point)[0..20] with the top bit cleared, KeyUsage critical, RA-TLS extensions as
/// DER OCTET STRINGs.
/// </summary>
public static class CertificateFactory
{
    /// <summary>rcgen's default notBefore.</summary>
    public static readonly DateTimeOffset DefaultNotBefore = new(1975, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>A self-signed CA (pathLen 1), used as the local key provider's root.</summary>
    public static X509Certificate2 CreateRootCa(ECDsa key, string organization, string commonName, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest(Name(organization, commonName), key, HashAlgorithmName.SHA256);
        AddCaExtensions(request, pathLength: 1);
        return request.Create(request.SubjectName, X509SignatureGenerator.CreateForECDsa(key), DefaultNotBefore, notAfter, Serial(key));
    }

    /// <summary>An intermediate CA (pathLen 0) for one app, carrying the app_id and usage <c>app:ca</c>.</summary>
    public static X509Certificate2 CreateAppCa(
        ECDsa key, ReadOnlySpan<byte> appId, X509Certificate2 issuer, ECDsa issuerKey, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest(Name("Dstack", "Dstack App CA"), key, HashAlgorithmName.SHA256);
        AddCaExtensions(request, pathLength: 0);
        request.CertificateExtensions.Add(OctetStringExtension(RaTlsOids.AppId, appId));
        request.CertificateExtensions.Add(OctetStringExtension(RaTlsOids.CertUsage, "app:ca"u8));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        var notAfterCapped = notAfter < issuer.NotAfter ? notAfter : new DateTimeOffset(issuer.NotAfter.ToUniversalTime());
        return request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), DefaultNotBefore, notAfterCapped, Serial(key));
    }

    /// <summary>An end-entity certificate signed by <paramref name="issuerKey"/>.</summary>
    public static X509Certificate2 CreateLeaf(ECDsa key, LeafCertificateRequest leaf, X509Certificate2 issuer, ECDsa issuerKey)
    {
        var request = new CertificateRequest(Name(null, leaf.Subject), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        var usages = new OidCollection();
        if (leaf.ServerAuth)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        }

        if (leaf.ClientAuth)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        }

        if (usages.Count > 0)
        {
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, critical: false));
        }

        if (leaf.AltNames.Count > 0)
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var name in leaf.AltNames)
            {
                san.AddDnsName(name);
            }

            request.CertificateExtensions.Add(san.Build());
        }

        if (leaf.Quote is not null)
        {
            request.CertificateExtensions.Add(OctetStringExtension(RaTlsOids.Quote, leaf.Quote));
        }

        if (leaf.EventLogJson is not null)
        {
            request.CertificateExtensions.Add(OctetStringExtension(RaTlsOids.EventLog, leaf.EventLogJson));
        }

        if (leaf.AppId is not null)
        {
            request.CertificateExtensions.Add(OctetStringExtension(RaTlsOids.AppId, leaf.AppId));
        }

        if (leaf.Usage is not null)
        {
            request.CertificateExtensions.Add(OctetStringExtension(RaTlsOids.CertUsage, System.Text.Encoding.UTF8.GetBytes(leaf.Usage)));
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        return request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), leaf.NotBefore, leaf.NotAfter, Serial(key));
    }

    /// <summary>report_data binding a quote to a certificate key: SHA-512("ratls-cert:" ‖ SPKI DER).</summary>
    public static byte[] RaTlsReportData(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return RaTlsReportData(key.ExportSubjectPublicKeyInfo());
    }

    /// <summary>report_data binding a quote to a certificate key given as its SubjectPublicKeyInfo DER.</summary>
    public static byte[] RaTlsReportData(ReadOnlySpan<byte> spki)
    {
        var input = new byte[RaTlsOids.RaTlsReportDataTag.Length + 1 + spki.Length];
        System.Text.Encoding.ASCII.GetBytes(RaTlsOids.RaTlsReportDataTag + ":").CopyTo(input, 0);
        spki.CopyTo(input.AsSpan(RaTlsOids.RaTlsReportDataTag.Length + 1));
        return SHA512.HashData(input);
    }

    /// <summary>Leaf first, PEM each, "\n" line ends.</summary>
    public static string ToPem(X509Certificate2 certificate) => new string(PemEncoding.Write("CERTIFICATE", certificate.RawData)) + "\n";

    /// <summary>The payload of a DER OCTET STRING extension value; null when absent or malformed.</summary>
    public static byte[]? ReadOctetStringExtension(X509Certificate2 certificate, string oid)
    {
        var extension = certificate.Extensions[oid];
        if (extension is null)
        {
            return null;
        }

        try
        {
            return AsnDecoder.ReadOctetString(extension.RawData, AsnEncodingRules.DER, out _);
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    private static void AddCaExtensions(CertificateRequest request, int pathLength)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        var ski = SHA256.HashData(request.PublicKey.ExportSubjectPublicKeyInfo()).AsSpan(0, 20);
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(ski, critical: false));
    }

    private static X509Extension OctetStringExtension(string oid, ReadOnlySpan<byte> payload)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteOctetString(payload);
        return new X509Extension(oid, writer.Encode(), critical: false);
    }

    private static X500DistinguishedName Name(string? organization, string commonName)
    {
        if (organization is null && commonName.Length == 0)
        {
            return new X500DistinguishedName([0x30, 0x00]);
        }

        var builder = new X500DistinguishedNameBuilder();
        if (organization is not null)
        {
            builder.AddOrganizationName(organization);
        }

        builder.AddCommonName(commonName);
        return builder.Build();
    }

    private static byte[] Serial(ECDsa key)
    {
        var point = key.ExportParameters(includePrivateParameters: false).Q;
        var uncompressed = new byte[65];
        uncompressed[0] = 4;
        point.X!.CopyTo(uncompressed, 1);
        point.Y!.CopyTo(uncompressed, 33);
        var serial = SHA256.HashData(uncompressed)[..20];
        serial[0] &= 0x7f;
        return serial;
    }
}
