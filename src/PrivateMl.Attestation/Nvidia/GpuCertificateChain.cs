using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>
/// A device certificate chain (leaf first: <c>… GSP FMC LF</c>, <c>… GSP BROM</c>, provisioner ICA, identity CA,
/// root) as decoded from PEM text. Trailing NULs and whitespace after the last block are tolerated (NVML bytes).
/// </summary>
public sealed class GpuCertificateChain : IDisposable
{
    public const int MaxCertificates = 8;
    public const string FwidOidHopper = "2.23.133.5.4.1";
    public const string FwidOidDiceTcbInfo = "2.23.133.5.4.1.1";

    private GpuCertificateChain(List<X509Certificate2> certificates) => Certificates = certificates;

    /// <summary>The certificates in the order supplied (leaf first).</summary>
    public IReadOnlyList<X509Certificate2> Certificates { get; }

    public X509Certificate2 Leaf => Certificates[0];

    /// <summary>NVIDIA's <c>ueid</c>: the leaf serial number as a decimal string.</summary>
    public string Ueid => new BigInteger(Leaf.SerialNumberBytes.Span, isUnsigned: true, isBigEndian: true).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The CN of certificate 1 (<c>GH100 A01 GSP BROM</c>): the local verifiers' <c>hwmodel</c>.</summary>
    public string? HwModel => Certificates.Count > 1 ? Certificates[1].GetNameInfo(X509NameType.SimpleName, false) : null;

    /// <summary>Parses PEM text; throws <see cref="AttestationException"/> (GpuCertificateChainMalformed) on bad input.</summary>
    public static GpuCertificateChain Parse(ReadOnlySpan<byte> pem)
    {
        if (pem.Length > GpuEvidencePayload.MaxCertificateChainBytes)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"certificate chain is {pem.Length} bytes");
        }

        var text = Encoding.ASCII.GetString(pem).TrimEnd('\0', ' ', '\r', '\n', '\t');
        const string begin = "-----BEGIN CERTIFICATE-----";
        const string end = "-----END CERTIFICATE-----";
        var certs = new List<X509Certificate2>();
        var pos = 0;
        try
        {
            while (true)
            {
                var b = text.IndexOf(begin, pos, StringComparison.Ordinal);
                if (b < 0)
                {
                    break;
                }

                var e = text.IndexOf(end, b, StringComparison.Ordinal);
                if (e < 0)
                {
                    throw Malformed("a PEM block has no END line");
                }

                if (certs.Count == MaxCertificates)
                {
                    throw Malformed($"more than {MaxCertificates} certificates");
                }

                var body = text.AsSpan(b + begin.Length, e - b - begin.Length);
                byte[] der;
                try
                {
                    der = Convert.FromBase64String(body.ToString());
                }
                catch (FormatException ex)
                {
                    throw new AttestationException(ErrorCode.GpuCertificateChainMalformed, $"certificate {certs.Count} is not base64", ex);
                }

                try
                {
                    certs.Add(X509CertificateLoader.LoadCertificate(der));
                }
                catch (CryptographicException ex)
                {
                    throw new AttestationException(ErrorCode.GpuCertificateChainMalformed, $"certificate {certs.Count} is not a valid X.509 certificate", ex);
                }

                pos = e + end.Length;
            }
        }
        catch
        {
            foreach (var c in certs)
            {
                c.Dispose();
            }

            throw;
        }

        if (certs.Count < 2)
        {
            foreach (var c in certs)
            {
                c.Dispose();
            }

            throw Malformed($"a device chain needs at least 2 certificates, found {certs.Count}");
        }

        return new GpuCertificateChain(certs);
    }

    /// <summary>
    /// Verifies the chain to <paramref name="trustedRoot"/> at <paramref name="now"/>. The supplied last certificate
    /// must be byte-identical to the trusted root when it is self-signed; every supplied certificate must be used.
    /// Returns null on success or a failed reason.
    /// </summary>
    public (ErrorCode Code, string Detail)? Verify(X509Certificate2 trustedRoot, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(trustedRoot);
        return CertificatePath.VerifyCached(Certificates, trustedRoot, now);
    }

    /// <summary>The FWID (48-byte digest) from the leaf's TCG extension, with the OID it came from; null when absent.</summary>
    public (string Oid, byte[] Digest)? LeafFwid()
    {
        foreach (var ext in Leaf.Extensions)
        {
            var oid = ext.Oid?.Value;
            if (oid == FwidOidHopper && ext.RawData.Length >= SpdmLayout.DigestSize)
            {
                return (oid, ext.RawData.AsSpan(ext.RawData.Length - SpdmLayout.DigestSize).ToArray());
            }

            if (oid == FwidOidDiceTcbInfo && TryDiceTcbInfoFwid(ext.RawData) is { } digest)
            {
                return (oid, digest);
            }
        }

        return null;
    }

    private static byte[]? TryDiceTcbInfoFwid(byte[] value)
    {
        try
        {
            var reader = new AsnReader(value, AsnEncodingRules.DER);
            var seq = reader.ReadSequence();
            var fwidsTag = new Asn1Tag(TagClass.ContextSpecific, 6, isConstructed: true);
            while (seq.HasData)
            {
                if (seq.PeekTag() == fwidsTag)
                {
                    var fwids = seq.ReadSequence(fwidsTag);
                    var first = fwids.ReadSequence();
                    first.ReadObjectIdentifier();
                    return first.ReadOctetString();
                }

                seq.ReadEncodedValue();
            }
        }
        catch (AsnContentException)
        {
            return null;
        }

        return null;
    }

    public void Dispose()
    {
        foreach (var c in Certificates)
        {
            c.Dispose();
        }
    }

    private static AttestationException Malformed(string why) => new(ErrorCode.GpuCertificateChainMalformed, why);
}
