using System.Formats.Asn1;
using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Pck;

/// <summary>
/// A minimal, strict X.509 v3 reader for Intel's ECDSA P-256 certificates, parsed once from DER with
/// <see cref="AsnReader"/> (no X509Certificate2, no X509Chain: this is the hot path). It keeps what the chain checks
/// need: the TBS bytes and signature, raw issuer/subject names, validity, the P-256 public key, basic constraints,
/// key usage and the SGX extension.
/// </summary>
internal sealed class ParsedCertificate
{
    private const string EcdsaWithSha256 = "1.2.840.10045.4.3.2";
    private const string EcPublicKey = "1.2.840.10045.2.1";
    private const string P256 = "1.2.840.10045.3.1.7";
    private const string CommonNameOid = "2.5.4.3";
    private const string BasicConstraintsOid = "2.5.29.19";
    private const string KeyUsageOid = "2.5.29.15";

    private static readonly HashSet<string> KnownCriticalExtensions = [BasicConstraintsOid, KeyUsageOid];

    private ParsedCertificate()
    {
    }

    public required ReadOnlyMemory<byte> Der { get; init; }

    public required ReadOnlyMemory<byte> Tbs { get; init; }

    /// <summary>DER ECDSA-Sig-Value.</summary>
    public required ReadOnlyMemory<byte> Signature { get; init; }

    /// <summary>Serial number content bytes, leading zero octets removed.</summary>
    public required ReadOnlyMemory<byte> Serial { get; init; }

    public required ReadOnlyMemory<byte> IssuerName { get; init; }

    public required ReadOnlyMemory<byte> SubjectName { get; init; }

    public required string SubjectCommonName { get; init; }

    public required string IssuerCommonName { get; init; }

    public required DateTimeOffset NotBefore { get; init; }

    public required DateTimeOffset NotAfter { get; init; }

    /// <summary>Uncompressed point x‖y, 64 bytes.</summary>
    public required ReadOnlyMemory<byte> PublicKey { get; init; }

    public required bool IsCa { get; init; }

    public required int? PathLength { get; init; }

    /// <summary>KeyUsage bits as a bit string's first two bytes (bit 0 = digitalSignature … bit 5 = keyCertSign, 6 = cRLSign); null when absent.</summary>
    public required X509KeyUsageBits? KeyUsage { get; init; }

    /// <summary>The SGX extension's DER value, when present.</summary>
    public ReadOnlyMemory<byte>? SgxExtension { get; init; }

    public string SerialHex => Convert.ToHexStringLower(Serial.Span);

    /// <summary>The P-256 public key (imported at parse time, so a point off the curve is a parse error).</summary>
    public required ECDsa Key { get; init; }

    /// <summary>True when <paramref name="issuer"/>'s key verifies this certificate's signature.</summary>
    public bool IsSignedBy(ParsedCertificate issuer) => Crypto.VerifyDer(issuer.Key, Tbs.Span, Signature.Span);

    /// <summary>Parses one DER certificate; anything unexpected raises <see cref="AttestationException"/> with <paramref name="code"/>.</summary>
    public static ParsedCertificate Parse(ReadOnlyMemory<byte> der, ErrorCode code)
    {
        try
        {
            return ParseCore(der);
        }
        catch (Exception ex) when (ex is AsnContentException or CryptographicException or ArgumentException or InvalidOperationException or FormatException or OverflowException)
        {
            throw new AttestationException(code, "a certificate is not valid DER X.509: " + ex.Message, ex);
        }
    }

    private static ParsedCertificate ParseCore(ReadOnlyMemory<byte> der)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        var certSeq = outer.ReadSequence();
        outer.ThrowIfNotEmpty();

        var tbs = certSeq.ReadEncodedValue();
        var outerAlg = ReadAlgorithm(certSeq);
        var signature = certSeq.ReadBitString(out var unused);
        certSeq.ThrowIfNotEmpty();
        if (unused != 0 || outerAlg != EcdsaWithSha256)
        {
            throw new FormatException($"signature algorithm {outerAlg} is not ecdsa-with-SHA256");
        }

        var t = new AsnReader(tbs, AsnEncodingRules.DER).ReadSequence();
        var versionTag = new Asn1Tag(TagClass.ContextSpecific, 0, isConstructed: true);
        if (!t.PeekTag().HasSameClassAndValue(versionTag))
        {
            throw new FormatException("only X.509 v3 certificates are accepted");
        }

        var versionSeq = t.ReadSequence(versionTag);
        if (!versionSeq.TryReadInt32(out var version) || version != 2)
        {
            throw new FormatException("only X.509 v3 certificates are accepted");
        }

        versionSeq.ThrowIfNotEmpty();
        var serial = TrimSerial(t.ReadIntegerBytes());
        if (ReadAlgorithm(t) != EcdsaWithSha256)
        {
            throw new FormatException("TBS signature algorithm differs from ecdsa-with-SHA256");
        }

        var issuer = t.ReadEncodedValue();
        var validity = t.ReadSequence();
        var notBefore = ReadTime(validity);
        var notAfter = ReadTime(validity);
        validity.ThrowIfNotEmpty();
        var subject = t.ReadEncodedValue();

        var spki = t.ReadSequence();
        var keyAlg = spki.ReadSequence();
        var keyAlgOid = keyAlg.ReadObjectIdentifier();
        var curve = keyAlg.ReadObjectIdentifier();
        keyAlg.ThrowIfNotEmpty();
        var point = spki.ReadBitString(out var keyUnused);
        spki.ThrowIfNotEmpty();
        if (keyAlgOid != EcPublicKey || curve != P256 || keyUnused != 0 || point.Length != 65 || point[0] != 0x04)
        {
            throw new FormatException("the public key is not an uncompressed P-256 point");
        }

        var isCa = false;
        int? pathLength = null;
        X509KeyUsageBits? keyUsage = null;
        ReadOnlyMemory<byte>? sgx = null;
        var extTag = new Asn1Tag(TagClass.ContextSpecific, 3, isConstructed: true);
        if (t.HasData && t.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 1)))
        {
            throw new FormatException("issuerUniqueID is not accepted");
        }

        if (t.HasData && t.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 2)))
        {
            throw new FormatException("subjectUniqueID is not accepted");
        }

        if (t.HasData)
        {
            var exts = t.ReadSequence(extTag).ReadSequence();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (exts.HasData)
            {
                var ext = exts.ReadSequence();
                var oid = ext.ReadObjectIdentifier();
                var critical = false;
                if (ext.HasData && ext.PeekTag().HasSameClassAndValue(Asn1Tag.Boolean))
                {
                    critical = ext.ReadBoolean();
                }

                var value = ext.ReadOctetString();
                ext.ThrowIfNotEmpty();
                if (!seen.Add(oid))
                {
                    throw new FormatException($"extension {oid} appears twice");
                }

                if (critical && !KnownCriticalExtensions.Contains(oid))
                {
                    throw new FormatException($"unknown critical extension {oid}");
                }

                switch (oid)
                {
                    case BasicConstraintsOid:
                        (isCa, pathLength) = ReadBasicConstraints(value);
                        break;
                    case KeyUsageOid:
                        keyUsage = ReadKeyUsage(value);
                        break;
                    case PckExtensions.SgxExtensionOid:
                        sgx = value;
                        break;
                }
            }
        }

        t.ThrowIfNotEmpty();
        return new ParsedCertificate
        {
            Der = der,
            Tbs = tbs,
            Signature = signature,
            Serial = serial,
            IssuerName = issuer,
            SubjectName = subject,
            IssuerCommonName = CommonName(issuer),
            SubjectCommonName = CommonName(subject),
            NotBefore = notBefore,
            NotAfter = notAfter,
            PublicKey = point.AsMemory(1),
            Key = Crypto.ImportP256(point.AsSpan(1)),
            IsCa = isCa,
            PathLength = pathLength,
            KeyUsage = keyUsage,
            SgxExtension = sgx,
        };
    }

    internal static string ReadAlgorithm(AsnReader reader)
    {
        var alg = reader.ReadSequence();
        var oid = alg.ReadObjectIdentifier();
        if (alg.HasData)
        {
            alg.ReadNull(); // ECDSA identifiers have no parameters; tolerate an explicit NULL only
        }

        alg.ThrowIfNotEmpty();
        return oid;
    }

    internal static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();

    internal static ReadOnlyMemory<byte> TrimSerial(ReadOnlyMemory<byte> serial)
    {
        var s = serial.Span;
        var i = 0;
        while (i < s.Length - 1 && s[i] == 0)
        {
            i++;
        }

        return serial[i..];
    }

    /// <summary>The first CN of a DER Name, or empty.</summary>
    internal static string CommonName(ReadOnlyMemory<byte> name)
    {
        var rdns = new AsnReader(name, AsnEncodingRules.DER).ReadSequence();
        while (rdns.HasData)
        {
            var set = rdns.ReadSetOf();
            while (set.HasData)
            {
                var atv = set.ReadSequence();
                var oid = atv.ReadObjectIdentifier();
                if (oid == CommonNameOid)
                {
                    var tag = atv.PeekTag();
                    return tag.TagValue switch
                    {
                        (int)UniversalTagNumber.UTF8String => atv.ReadCharacterString(UniversalTagNumber.UTF8String),
                        (int)UniversalTagNumber.PrintableString => atv.ReadCharacterString(UniversalTagNumber.PrintableString),
                        _ => throw new FormatException("the common name is neither UTF8String nor PrintableString"),
                    };
                }

                atv.ReadEncodedValue();
            }
        }

        return string.Empty;
    }

    private static (bool IsCa, int? PathLength) ReadBasicConstraints(ReadOnlyMemory<byte> value)
    {
        var r = new AsnReader(value, AsnEncodingRules.DER);
        var seq = r.ReadSequence();
        r.ThrowIfNotEmpty();
        var ca = false;
        int? path = null;
        if (seq.HasData && seq.PeekTag().HasSameClassAndValue(Asn1Tag.Boolean))
        {
            ca = seq.ReadBoolean();
        }

        if (seq.HasData)
        {
            if (!seq.TryReadInt32(out var p) || p < 0)
            {
                throw new FormatException("pathLenConstraint is invalid");
            }

            path = p;
        }

        seq.ThrowIfNotEmpty();
        return (ca, path);
    }

    private static X509KeyUsageBits ReadKeyUsage(ReadOnlyMemory<byte> value)
    {
        var r = new AsnReader(value, AsnEncodingRules.DER);
        var bits = r.ReadBitString(out _);
        r.ThrowIfNotEmpty();
        var v = 0;
        for (var i = 0; i < Math.Min(bits.Length, 2); i++)
        {
            for (var b = 0; b < 8; b++)
            {
                if ((bits[i] & (0x80 >> b)) != 0)
                {
                    v |= 1 << ((i * 8) + b);
                }
            }
        }

        return (X509KeyUsageBits)v;
    }
}

/// <summary>KeyUsage bits by RFC 5280 bit number.</summary>
[Flags]
internal enum X509KeyUsageBits
{
    None = 0,
    DigitalSignature = 1 << 0,
    NonRepudiation = 1 << 1,
    KeyEncipherment = 1 << 2,
    DataEncipherment = 1 << 3,
    KeyAgreement = 1 << 4,
    KeyCertSign = 1 << 5,
    CrlSign = 1 << 6,
}

/// <summary>Small crypto helpers over the BCL.</summary>
internal static class Crypto
{
    private const int KeyCacheCapacity = 1024;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<PointKey, ECDsa> KeyCache = new();

    /// <summary>
    /// Returns the P-256 public key for an uncompressed point x‖y (64 bytes). Importing a key through OpenSSL 3 costs
    /// several signature verifications, so imported keys are shared process-wide by their exact bytes (a pure
    /// memo: every signature is still verified). Callers must not dispose the result.
    /// </summary>
    public static ECDsa ImportP256(ReadOnlySpan<byte> xy)
    {
        if (xy.Length != 64)
        {
            throw new CryptographicException("a P-256 public key is 64 bytes");
        }

        var id = System.Runtime.InteropServices.MemoryMarshal.Read<PointKey>(xy);
        if (KeyCache.TryGetValue(id, out var cached))
        {
            return cached;
        }

        Span<byte> spki = stackalloc byte[SpkiPrefix.Length + 64];
        SpkiPrefix.CopyTo(spki);
        xy.CopyTo(spki[SpkiPrefix.Length..]);
        var key = ECDsa.Create();
        try
        {
            key.ImportSubjectPublicKeyInfo(spki, out _);
        }
        catch
        {
            key.Dispose();
            throw;
        }

        if (KeyCache.Count >= KeyCacheCapacity)
        {
            KeyCache.Clear();
        }

        return KeyCache.GetOrAdd(id, key);
    }

    /// <summary>SubjectPublicKeyInfo DER for an uncompressed P-256 point, up to the 0x04 point prefix.</summary>
    private static ReadOnlySpan<byte> SpkiPrefix =>
    [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
        0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private readonly record struct PointKey(ulong A, ulong B, ulong C, ulong D, ulong E, ulong F, ulong G, ulong H);

    /// <summary>Verifies an r‖s (IEEE P1363) ECDSA P-256 signature over SHA-256 of <paramref name="data"/>.</summary>
    public static bool VerifyP1363(ECDsa key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != 64)
        {
            return false;
        }

        // Keys of verified collateral are shared between threads; serialise use of one key.
        lock (key)
        {
            return key.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
    }

    /// <summary>Verifies a DER (RFC 3279) ECDSA P-256 signature over SHA-256 of <paramref name="data"/>; malformed DER is "false".</summary>
    public static bool VerifyDer(ECDsa key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        try
        {
            lock (key)
            {
                return key.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
            }
        }
        catch (CryptographicException)
        {
            return false;
        }
    }
}
