using System.Diagnostics.CodeAnalysis;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx;

/// <summary>
/// An Intel DCAP ECDSA quote: TDX v4 (TD 1.0 body), TDX v5 (TD 1.0 or TD 1.5 body, with a body descriptor), or SGX
/// v3/v4/v5. Every field is exposed by name; byte fields are slices of one private copy of the input.
/// <see cref="Parse(ReadOnlySpan{byte})"/> checks structure only (lengths, versions, types); the cryptography and the
/// collateral are checked by <see cref="DcapVerifier"/>.
/// </summary>
public sealed record TdxQuote
{
    public required QuoteHeader Header { get; init; }

    /// <summary>Which body the quote carries.</summary>
    public required ReportBodyKind BodyKind { get; init; }

    /// <summary>v5 only: the <c>size</c> field of the body descriptor.</summary>
    public uint? BodyDescriptorSize { get; init; }

    /// <summary>The enclave report of an SGX quote; null for TDX.</summary>
    public SgxReportBody? SgxReport { get; init; }

    /// <summary>The TD report of a TDX quote; null for SGX.</summary>
    public TdReportBody? TdReport { get; init; }

    public required QuoteSignatureData Signature { get; init; }

    /// <summary>Bytes after the signature data that belong to no field (real quotes carry up to 70 zero bytes).</summary>
    public ReadOnlyMemory<byte> TrailingBytes { get; init; }

    /// <summary>The exact bytes this quote was parsed from (empty for a quote built in memory; see <see cref="ToBytes"/>).</summary>
    public ReadOnlyMemory<byte> Bytes { get; init; }

    /// <summary>Offset of the report body (48, or 54 in v5).</summary>
    public int ReportBodyOffset => Header.Version >= 5 ? QuoteLayout.HeaderSize + QuoteLayout.BodyDescriptorSize : QuoteLayout.HeaderSize;

    /// <summary>Length of the report body.</summary>
    public int ReportBodyLength => QuoteParser.BodySize(BodyKind);

    /// <summary>Length of the signed region (header, descriptor, body).</summary>
    public int SignedLength => ReportBodyOffset + ReportBodyLength;

    /// <summary>The 64-byte report data of the body (TD or SGX).</summary>
    public ReadOnlyMemory<byte> ReportData => TdReport?.ReportData ?? SgxReport!.ReportData;

    public bool IsTdx => Header.TeeType == TeeType.Tdx;

    /// <summary>Parses a quote; malformed input raises <see cref="AttestationException"/> and nothing else.</summary>
    public static TdxQuote Parse(ReadOnlySpan<byte> bytes) => QuoteParser.Parse(bytes);

    /// <summary>Parses a quote without throwing for malformed input.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, [NotNullWhen(true)] out TdxQuote? quote, [NotNullWhen(false)] out AttestationException? error)
    {
        try
        {
            quote = QuoteParser.Parse(bytes);
            error = null;
            return true;
        }
        catch (AttestationException ex)
        {
            quote = null;
            error = ex;
            return false;
        }
    }

    /// <summary>Serialises the fields back to wire form (the inverse of <see cref="Parse"/>, trailing bytes included).</summary>
    public byte[] ToBytes() => QuoteWriter.Write(this, includeSignatureData: true);

    /// <summary>The bytes the quote signature covers, computed from the fields (header, descriptor, body).</summary>
    public byte[] GetSignedRegion() => QuoteWriter.Write(this, includeSignatureData: false);
}
