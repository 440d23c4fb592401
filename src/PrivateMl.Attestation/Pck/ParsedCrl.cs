using System.Formats.Asn1;
using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Pck;

/// <summary>
/// An X.509 v2 CRL read with <see cref="AsnReader"/>: TBS bytes and signature (so the signature can be checked with
/// ECDsa, which .NET's CRL types cannot do), issuer name, thisUpdate, nextUpdate (required here) and revoked serials.
/// </summary>
internal sealed class ParsedCrl
{
    private const string EcdsaWithSha256 = "1.2.840.10045.4.3.2";

    private ParsedCrl()
    {
    }

    public required ReadOnlyMemory<byte> Tbs { get; init; }

    public required ReadOnlyMemory<byte> Signature { get; init; }

    public required ReadOnlyMemory<byte> IssuerName { get; init; }

    public required string IssuerCommonName { get; init; }

    public required DateTimeOffset ThisUpdate { get; init; }

    public required DateTimeOffset NextUpdate { get; init; }

    /// <summary>Revoked serials as lower-case hex of the trimmed integer bytes.</summary>
    public required IReadOnlySet<string> RevokedSerials { get; init; }

    public bool IsSignedBy(ParsedCertificate issuer) => Crypto.VerifyDer(issuer.Key, Tbs.Span, Signature.Span);

    public bool Revokes(ParsedCertificate certificate) => RevokedSerials.Contains(certificate.SerialHex);

    /// <summary>Parses a DER CRL; anything unexpected raises <see cref="AttestationException"/> (<see cref="ErrorCode.CollateralMalformed"/>).</summary>
    public static ParsedCrl Parse(ReadOnlyMemory<byte> der, string what)
    {
        try
        {
            return ParseCore(der);
        }
        catch (Exception ex) when (ex is AsnContentException or CryptographicException or ArgumentException or InvalidOperationException or FormatException or OverflowException)
        {
            throw new AttestationException(ErrorCode.CollateralMalformed, $"the {what} is not a valid DER CRL: {ex.Message}", ex);
        }
    }

    private static ParsedCrl ParseCore(ReadOnlyMemory<byte> der)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        var list = outer.ReadSequence();
        outer.ThrowIfNotEmpty();
        var tbs = list.ReadEncodedValue();
        var alg = ParsedCertificate.ReadAlgorithm(list);
        var signature = list.ReadBitString(out var unused);
        list.ThrowIfNotEmpty();
        if (alg != EcdsaWithSha256 || unused != 0)
        {
            throw new FormatException($"CRL signature algorithm {alg} is not ecdsa-with-SHA256");
        }

        var t = new AsnReader(tbs, AsnEncodingRules.DER).ReadSequence();
        if (!t.TryReadInt32(out var version) || version != 1)
        {
            throw new FormatException("only X.509 v2 CRLs are accepted");
        }

        if (ParsedCertificate.ReadAlgorithm(t) != EcdsaWithSha256)
        {
            throw new FormatException("CRL TBS signature algorithm differs from ecdsa-with-SHA256");
        }

        var issuer = t.ReadEncodedValue();
        var thisUpdate = ParsedCertificate.ReadTime(t);
        if (!t.HasData || !(t.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) || t.PeekTag().HasSameClassAndValue(Asn1Tag.GeneralizedTime)))
        {
            throw new FormatException("the CRL has no nextUpdate");
        }

        var nextUpdate = ParsedCertificate.ReadTime(t);
        var serials = new HashSet<string>(StringComparer.Ordinal);
        if (t.HasData && t.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
        {
            var revoked = t.ReadSequence();
            while (revoked.HasData)
            {
                var entry = revoked.ReadSequence();
                var serial = ParsedCertificate.TrimSerial(entry.ReadIntegerBytes());
                ParsedCertificate.ReadTime(entry);
                if (entry.HasData)
                {
                    entry.ReadSequence(); // entry extensions (reason code etc.)
                }

                entry.ThrowIfNotEmpty();
                serials.Add(Convert.ToHexStringLower(serial.Span));
            }
        }

        if (t.HasData)
        {
            t.ReadSequence(new Asn1Tag(TagClass.ContextSpecific, 0, isConstructed: true));
        }

        t.ThrowIfNotEmpty();
        return new ParsedCrl
        {
            Tbs = tbs,
            Signature = signature,
            IssuerName = issuer,
            IssuerCommonName = ParsedCertificate.CommonName(issuer),
            ThisUpdate = thisUpdate,
            NextUpdate = nextUpdate,
            RevokedSerials = serials,
        };
    }
}
