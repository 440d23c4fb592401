namespace PrivateMl.Tee.Simulator;

/// <summary>
/// Deliberate defects of a simulated quote, for negative tests. <see cref="None"/> gives a quote whose layout is that
/// of a real TDX v4 quote. Header and QE-report overrides are applied before signing, so the signatures stay valid and
/// the verifier must reject the quote for the overridden field itself.
/// </summary>
public sealed record QuoteDefects
{
    public static QuoteDefects None { get; } = new();

    // Header (signed)
    public ushort? Version { get; init; }

    public ushort? AttestationKeyType { get; init; }

    public uint? TeeType { get; init; }

    /// <summary>16 bytes; Intel's QE vendor id by default.</summary>
    public ReadOnlyMemory<byte>? QeVendorId { get; init; }

    // Body (signed)
    /// <summary>Replaces the platform's TD profile for this quote only (e.g. <see cref="TdProfile.WithDebug"/>).</summary>
    public TdProfile? BodyProfile { get; init; }

    // Quote signature
    /// <summary>Flips one bit of the quote signature.</summary>
    public bool CorruptQuoteSignature { get; init; }

    /// <summary>Signs header ‖ body with a key other than the attestation key in the quote.</summary>
    public bool SignQuoteWithUnrelatedKey { get; init; }

    /// <summary>Writes these 64 bytes as the attestation public key (e.g. a point not on the curve).</summary>
    public ReadOnlyMemory<byte>? AttestationPublicKey { get; init; }

    // QE report (signed by the PCK key)
    public bool CorruptQeReportSignature { get; init; }

    /// <summary>Signs the QE report with a key other than the PCK leaf's.</summary>
    public bool SignQeReportWithUnrelatedKey { get; init; }

    /// <summary>Breaks the SHA-256(attestation key ‖ auth data) binding in the QE report's report_data.</summary>
    public bool QeReportDataMismatch { get; init; }

    /// <summary>Sets a non-zero byte in the second half of the QE report_data (must be zero).</summary>
    public bool NonZeroQeReportDataTail { get; init; }

    public ReadOnlyMemory<byte>? QeMrSigner { get; init; }

    public ushort? QeIsvProdId { get; init; }

    public ushort? QeIsvSvn { get; init; }

    /// <summary>16 bytes of SGX attributes (set bit 1 of byte 0 for a DEBUG QE).</summary>
    public ReadOnlyMemory<byte>? QeAttributes { get; init; }

    public uint? QeMiscSelect { get; init; }

    /// <summary>QE authentication data (the report_data hash is computed over it, so the binding still holds).</summary>
    public ReadOnlyMemory<byte>? QeAuthData { get; init; }

    // Certification data
    /// <summary>Outer certification data type; 6 (QE report certification data) by default.</summary>
    public ushort? OuterCertificationDataType { get; init; }

    /// <summary>Inner certification data type; 5 (PCK chain) by default.</summary>
    public ushort? InnerCertificationDataType { get; init; }

    /// <summary>PEM written as the PCK chain instead of the PKI's (leaf, PCK CA, root).</summary>
    public string? PckChainPem { get; init; }

    /// <summary>Raw inner certification data instead of PEM + NUL.</summary>
    public ReadOnlyMemory<byte>? CertificationData { get; init; }

    /// <summary>Omits the NUL byte real quotes put after the PEM chain.</summary>
    public bool OmitPemTerminator { get; init; }

    // Length fields: declared value = actual value + delta (positive: claims more bytes than exist)
    public long SignatureDataLengthDelta { get; init; }

    public long OuterCertificationDataSizeDelta { get; init; }

    public long InnerCertificationDataSizeDelta { get; init; }

    public int QeAuthDataSizeDelta { get; init; }

    // Framing
    /// <summary>Cuts the finished quote to this many bytes.</summary>
    public int? TruncateTo { get; init; }

    /// <summary>Bytes appended after the signature data (real v4 quotes from configfs carry 70 zero bytes).</summary>
    public ReadOnlyMemory<byte> TrailingBytes { get; init; } = ReadOnlyMemory<byte>.Empty;
}
