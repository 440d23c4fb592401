using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Security.Cryptography.Xml;
using System.Text;
using System.Xml;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>
/// Writes RIMs in NVIDIA's SWID layout, signed the way NVIDIA signs them (enveloped XML-DSig, C14N 1.1 URI,
/// ECDSA-SHA384, X509Data signer first). For the simulator and for tests that sign with their own keys.
/// </summary>
public static class RimDocumentBuilder
{
    private const string HashNamespace = "http://www.w3.org/2001/04/xmlenc#sha384";

    /// <summary>Builds and signs a RIM with 64 measurement slots; <paramref name="active"/> maps index → digests.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Only the algorithms registered by XmlDsigAlgorithms are used.")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "No XSLT transform is used.")]
    public static byte[] Build(string name, string colloquialVersion, string edition, IReadOnlyDictionary<int, IReadOnlyList<byte[]>> active, ECDsa signer, IReadOnlyList<X509Certificate2> certificates, int slots = 64)
    {
        ArgumentNullException.ThrowIfNull(active);
        ArgumentNullException.ThrowIfNull(signer);
        ArgumentNullException.ThrowIfNull(certificates);
        XmlDsigAlgorithms.Register();
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<SoftwareIdentity xmlns=\"{NvidiaRim.SwidNamespace}\" xmlns:ns0=\"{NvidiaRim.SwidNamespace}\" xmlns:ns2=\"{HashNamespace}\" corpus=\"false\" name=\"{name}\" patch=\"false\" supplemental=\"false\" tagId=\"{Convert.ToHexStringLower(SHA384.HashData(Encoding.UTF8.GetBytes(name + colloquialVersion)))}\" version=\"1.0\" tagVersion=\"0\">\n");
        sb.Append("    <ns0:Entity name=\"PrivateMl Simulator\" role=\"softwareCreator tagCreator\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"    <ns0:Meta colloquialVersion=\"{colloquialVersion}\" edition=\"{edition}\" product=\"{name}\" revision=\"r1\" PayloadType=\"direct\"/>\n");
        sb.Append("    <ns0:Payload>\n");
        for (var i = 0; i < slots; i++)
        {
            var isActive = active.TryGetValue(i, out var digests);
            var hashes = isActive ? digests! : [new byte[SpdmLayout.DigestSize]];
            sb.Append(CultureInfo.InvariantCulture, $"        <ns0:Resource type=\"Measurement\" index=\"{i}\" active=\"{(isActive ? "True" : "False")}\" alternatives=\"{hashes.Count}\"");
            for (var k = 0; k < hashes.Count; k++)
            {
                sb.Append(CultureInfo.InvariantCulture, $" ns2:Hash{k}=\"{Convert.ToHexStringLower(hashes[k])}\"");
            }

            sb.Append(CultureInfo.InvariantCulture, $" name=\"Measurement_{i}\" size=\"48\"/>\n");
        }

        sb.Append("    </ns0:Payload>\n</SoftwareIdentity>");

        var doc = new XmlDocument { PreserveWhitespace = true, XmlResolver = null };
        doc.LoadXml(sb.ToString());
        var signed = new SignedXml(doc) { SigningKey = signer };
        signed.SignedInfo!.CanonicalizationMethod = NvidiaRim.C14N11Uri;
        signed.SignedInfo.SignatureMethod = NvidiaRim.EcdsaSha384Uri;
        var reference = new Reference(string.Empty) { DigestMethod = NvidiaRim.Sha384Uri };
        reference.AddTransform(new XmlDsigEnvelopedSignatureTransform());
        reference.AddTransform(new XmlDsigC14NTransform { Algorithm = NvidiaRim.C14N11Uri });
        signed.AddReference(reference);
        var keyInfo = new KeyInfo();
        var data = new KeyInfoX509Data();
        foreach (var c in certificates)
        {
            data.AddCertificate(c);
        }

        keyInfo.AddClause(data);
        signed.KeyInfo = keyInfo;
        signed.ComputeSignature();
        doc.DocumentElement!.AppendChild(doc.ImportNode(signed.GetXml(), true));
        return Encoding.UTF8.GetBytes(doc.OuterXml);
    }
}
