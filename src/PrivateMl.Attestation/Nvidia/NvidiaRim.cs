using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Security.Cryptography.Xml;
using System.Xml;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>One <c>&lt;Resource type="Measurement"&gt;</c> of a RIM: an index (0-based) and its acceptable digests.</summary>
public sealed record RimMeasurement(int Index, bool Active, IReadOnlyList<byte[]> Alternatives, string? Name);

/// <summary>
/// An NVIDIA reference integrity manifest (TCG RIM / ISO 19770-2 SWID XML with an enveloped XML signature:
/// ECDSA-P384/SHA-384, C14N 1.1). <see cref="Parse(byte[])"/> reads the measurements; <see cref="VerifySignature"/>
/// checks the XML signature with the embedded signer key and <see cref="VerifyChain"/> the signer's chain to the CoRIM
/// root. Authenticity and the signer's validity window are reported separately.
/// </summary>
public sealed class NvidiaRim : IDisposable
{
    public const int MaxRimBytes = 1024 * 1024;
    public const int MaxMeasurements = 256;
    public const int MaxAlternatives = 16;
    public const string SwidNamespace = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd";
    public const string C14N11Uri = "http://www.w3.org/2006/12/xml-c14n11";
    public const string EcdsaSha384Uri = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
    public const string Sha384Uri = "http://www.w3.org/2001/04/xmldsig-more#sha384";

    private readonly XmlDocument _document;

    private NvidiaRim(XmlDocument document, List<X509Certificate2> certificates)
    {
        _document = document;
        SignerCertificates = certificates;
    }

    /// <summary>SoftwareIdentity name (GH100, GB100, LS10).</summary>
    public required string Name { get; init; }

    public required string TagId { get; init; }

    /// <summary>Meta colloquialVersion: the driver or VBIOS version compared with the evidence.</summary>
    public required string ColloquialVersion { get; init; }

    /// <summary>Meta edition (GPU, SWITCH).</summary>
    public string? Edition { get; init; }

    public required IReadOnlyList<RimMeasurement> Measurements { get; init; }

    /// <summary>The certificates of <c>KeyInfo/X509Data</c>, signer first.</summary>
    public IReadOnlyList<X509Certificate2> SignerCertificates { get; }

    /// <summary>Indices of the active measurements, ascending.</summary>
    public IEnumerable<int> ActiveIndices => Measurements.Where(m => m.Active).Select(m => m.Index).Order();

    static NvidiaRim() => XmlDsigAlgorithms.Register();

    /// <summary>Parses a RIM; throws <see cref="AttestationException"/> (RimMalformed) on bad input.</summary>
    public static NvidiaRim Parse(byte[] xml)
    {
        ArgumentNullException.ThrowIfNull(xml);
        if (xml.Length > MaxRimBytes)
        {
            throw new AttestationException(ErrorCode.RimMalformed, $"RIM is {xml.Length} bytes; at most {MaxRimBytes} are accepted");
        }

        var doc = new XmlDocument { PreserveWhitespace = true, XmlResolver = null };
        try
        {
            using var stream = new MemoryStream(xml);
            using var reader = XmlReader.Create(stream, new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, MaxCharactersInDocument = MaxRimBytes * 2L });
            doc.Load(reader);
        }
        catch (XmlException e)
        {
            throw new AttestationException(ErrorCode.RimMalformed, $"RIM is not well-formed XML: {e.Message}", e);
        }

        var root = doc.DocumentElement;
        if (root is null || root.LocalName != "SoftwareIdentity" || root.NamespaceURI != SwidNamespace)
        {
            throw Malformed("the root element is not a SWID SoftwareIdentity");
        }

        var ns = new XmlNamespaceManager(doc.NameTable);
        ns.AddNamespace("s", SwidNamespace);
        ns.AddNamespace("ds", SignedXml.XmlDsigNamespaceUrl);
        var meta = root.SelectSingleNode("s:Meta", ns) as XmlElement ?? throw Malformed("no Meta element");
        var version = meta.GetAttribute("colloquialVersion");
        if (string.IsNullOrEmpty(version))
        {
            throw Malformed("Meta has no colloquialVersion");
        }

        var measurements = new List<RimMeasurement>();
        var seen = new HashSet<int>();
        foreach (XmlElement resource in root.SelectNodes("s:Payload/s:Resource", ns)!)
        {
            if (resource.GetAttribute("type") != "Measurement")
            {
                continue;
            }

            if (measurements.Count == MaxMeasurements)
            {
                throw Malformed($"more than {MaxMeasurements} measurements");
            }

            if (!int.TryParse(resource.GetAttribute("index"), NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index > 1024)
            {
                throw Malformed($"measurement index '{resource.GetAttribute("index")}' is not a small number");
            }

            if (!seen.Add(index))
            {
                throw Malformed($"measurement index {index} appears twice");
            }

            var active = string.Equals(resource.GetAttribute("active"), "True", StringComparison.OrdinalIgnoreCase);
            _ = int.TryParse(resource.GetAttribute("alternatives"), NumberStyles.None, CultureInfo.InvariantCulture, out var alternatives);
            if (alternatives is < 0 or > MaxAlternatives)
            {
                throw Malformed($"measurement {index}: {alternatives} alternatives");
            }

            var hashes = new List<byte[]>();
            for (var k = 0; k < Math.Max(alternatives, 1); k++)
            {
                var attr = resource.Attributes.Cast<XmlAttribute>().FirstOrDefault(a => a.LocalName == $"Hash{k}");
                if (attr is null)
                {
                    if (k == 0 || k < alternatives)
                    {
                        throw Malformed($"measurement {index}: Hash{k} is missing");
                    }

                    break;
                }

                try
                {
                    hashes.Add(Convert.FromHexString(attr.Value));
                }
                catch (FormatException e)
                {
                    throw new AttestationException(ErrorCode.RimMalformed, $"measurement {index}: Hash{k} is not hex", e);
                }
            }

            measurements.Add(new RimMeasurement(index, active, hashes, resource.GetAttribute("name")));
        }

        if (measurements.Count == 0)
        {
            throw Malformed("no measurements");
        }

        var certs = new List<X509Certificate2>();
        try
        {
            foreach (XmlNode node in root.SelectNodes("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", ns)!)
            {
                if (certs.Count == GpuCertificateChain.MaxCertificates)
                {
                    throw Malformed("too many certificates in X509Data");
                }

                certs.Add(X509CertificateLoader.LoadCertificate(Convert.FromBase64String(node.InnerText.Trim())));
            }
        }
        catch (Exception e) when (e is FormatException or CryptographicException)
        {
            foreach (var c in certs)
            {
                c.Dispose();
            }

            throw new AttestationException(ErrorCode.RimMalformed, "an X509Certificate in the RIM signature is invalid", e);
        }

        return new NvidiaRim(doc, certs)
        {
            Name = root.GetAttribute("name"),
            TagId = root.GetAttribute("tagId"),
            ColloquialVersion = version,
            Edition = meta.GetAttribute("edition"),
            Measurements = measurements,
        };
    }

    /// <summary>Verifies the enveloped XML signature with the signer certificate's key. Null on success, else why not.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "The only algorithms accepted (ECDSA-SHA384, C14N, enveloped-signature, SHA-384) are registered and preserved by XmlDsigAlgorithms.Register.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "XSLT transforms are never used by RIMs; a RIM naming one fails verification.")]
    public string? VerifySignature()
    {
        if (SignerCertificates.Count == 0)
        {
            return "the RIM carries no signer certificate";
        }

        var signature = _document.DocumentElement!.GetElementsByTagName("Signature", SignedXml.XmlDsigNamespaceUrl);
        if (signature.Count != 1)
        {
            return $"the RIM has {signature.Count} XML signatures; exactly one is required";
        }

        ECDsa? key;
        try
        {
            key = SignerCertificates[0].GetECDsaPublicKey();
        }
        catch (CryptographicException e)
        {
            return $"the signer certificate's key is unusable: {e.Message}";
        }

        using var keyScope = key;
        if (key is null)
        {
            return "the signer certificate has no ECDSA key";
        }

        try
        {
            var signed = new SignedXml(_document);
            signed.SafeCanonicalizationMethods.Add(C14N11Uri);
            signed.LoadXml((XmlElement)signature[0]!);
            if (signed.SignatureMethod != EcdsaSha384Uri)
            {
                return $"signature method {signed.SignatureMethod} is not ECDSA-SHA384";
            }

            if (signed.SignedInfo!.References.Count != 1 || ((Reference)signed.SignedInfo.References[0]!).Uri != string.Empty)
            {
                return "the signature must have exactly one reference to the whole document (URI=\"\")";
            }

            var reference = (Reference)signed.SignedInfo.References[0]!;
            foreach (Transform t in reference.TransformChain)
            {
                if (t.Algorithm is not (SignedXml.XmlDsigEnvelopedSignatureTransformUrl or SignedXml.XmlDsigC14NTransformUrl or C14N11Uri or SignedXml.XmlDsigExcC14NTransformUrl))
                {
                    return $"transform {t.Algorithm} is not accepted in a RIM";
                }
            }

            return signed.CheckSignature(key) ? null : "XML signature does not verify (digest or signature mismatch)";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // SignedXml throws several exception types on malformed signatures; all mean "not verified".
            return $"XML signature could not be checked: {e.Message}";
        }
    }

    /// <summary>
    /// Verifies the X509Data chain (signer first) to <paramref name="root"/>, ignoring validity periods (reported by
    /// <see cref="ValidityProblem"/>). Null on success, else why not.
    /// </summary>
    public string? VerifyChain(X509Certificate2 root) =>
        SignerCertificates.Count == 0
            ? "the RIM carries no signer certificate"
            : CertificatePath.Verify(SignerCertificates, root, null)?.Detail;

    /// <summary>Null when every certificate of the signer chain is valid at <paramref name="now"/>; else a sentence.</summary>
    public string? ValidityProblem(DateTimeOffset now)
    {
        foreach (var c in SignerCertificates)
        {
            if (now < c.NotBefore.ToUniversalTime() || now > c.NotAfter.ToUniversalTime())
            {
                return $"'{c.GetNameInfo(X509NameType.SimpleName, false)}' is valid {c.NotBefore.ToUniversalTime():yyyy-MM-dd} to {c.NotAfter.ToUniversalTime():yyyy-MM-dd}, not at {now:yyyy-MM-dd}";
            }
        }

        return null;
    }

    public void Dispose()
    {
        foreach (var c in SignerCertificates)
        {
            c.Dispose();
        }
    }

    private static AttestationException Malformed(string why) => new(ErrorCode.RimMalformed, why);
}
