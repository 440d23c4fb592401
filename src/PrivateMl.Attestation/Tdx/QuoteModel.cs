using System.Buffers.Binary;

namespace PrivateMl.Attestation.Tdx;

/// <summary>The TEE a quote comes from (header <c>tee_type</c>).</summary>
public enum TeeType : uint
{
    Sgx = 0x00000000,
    Tdx = 0x00000081,
}

/// <summary>Header <c>attestation_key_type</c>. Only <see cref="EcdsaP256"/> is accepted by the verifier.</summary>
public enum AttestationKeyType : ushort
{
    EcdsaP256 = 2,
    EcdsaP384 = 3,
}

/// <summary>Which report body a quote carries (the v5 body descriptor <c>type</c>; implied by version and TEE for v3/v4).</summary>
public enum ReportBodyKind : ushort
{
    /// <summary>SGX enclave report, 384 bytes.</summary>
    Sgx = 1,

    /// <summary>TD report, TDX 1.0, 584 bytes.</summary>
    Td10 = 2,

    /// <summary>TD report, TDX 1.5, 648 bytes (adds TEE_TCB_SVN2 and MR_SERVICETD).</summary>
    Td15 = 3,
}

/// <summary>Certification data types (Intel <c>sgx_quote_3.h</c>).</summary>
public enum CertificationDataType : ushort
{
    PpidCleartext = 1,
    PpidRsa2048Encrypted = 2,
    PpidRsa3072Encrypted = 3,
    PckLeafCertificate = 4,
    PckCertificateChain = 5,
    QeReportCertificationData = 6,
    PlatformManifest = 7,
}

/// <summary>The 48-byte quote header.</summary>
public sealed record QuoteHeader
{
    public required ushort Version { get; init; }

    public required AttestationKeyType AttestationKeyType { get; init; }

    public required TeeType TeeType { get; init; }

    /// <summary>Bytes 8..11: <c>qe_svn</c> and <c>pce_svn</c> in v3, reserved in v4/v5.</summary>
    public required ReadOnlyMemory<byte> Reserved { get; init; }

    /// <summary>QE SVN (meaningful in v3 only; bytes 8..9 as u16).</summary>
    public ushort QeSvn => Reserved.Length >= 2 ? BinaryPrimitives.ReadUInt16LittleEndian(Reserved.Span) : (ushort)0;

    /// <summary>PCE SVN (meaningful in v3 only; bytes 10..11 as u16).</summary>
    public ushort PceSvn => Reserved.Length >= 4 ? BinaryPrimitives.ReadUInt16LittleEndian(Reserved.Span[2..]) : (ushort)0;

    public required ReadOnlyMemory<byte> QeVendorId { get; init; }

    /// <summary>20 bytes; the first 16 are the QE ID.</summary>
    public required ReadOnlyMemory<byte> UserData { get; init; }
}

/// <summary>An SGX report body: the enclave report of an SGX quote, and the QE report of every quote.</summary>
public sealed record SgxReportBody
{
    public required ReadOnlyMemory<byte> CpuSvn { get; init; }

    public required uint MiscSelect { get; init; }

    public required ReadOnlyMemory<byte> Reserved1 { get; init; }

    public required ReadOnlyMemory<byte> IsvExtProdId { get; init; }

    /// <summary>16 bytes: flags (u64) then XFRM (u64).</summary>
    public required ReadOnlyMemory<byte> Attributes { get; init; }

    public required ReadOnlyMemory<byte> MrEnclave { get; init; }

    public required ReadOnlyMemory<byte> Reserved2 { get; init; }

    public required ReadOnlyMemory<byte> MrSigner { get; init; }

    public required ReadOnlyMemory<byte> Reserved3 { get; init; }

    public required ReadOnlyMemory<byte> ConfigId { get; init; }

    public required ushort IsvProdId { get; init; }

    public required ushort IsvSvn { get; init; }

    public required ushort ConfigSvn { get; init; }

    public required ReadOnlyMemory<byte> Reserved4 { get; init; }

    public required ReadOnlyMemory<byte> IsvFamilyId { get; init; }

    public required ReadOnlyMemory<byte> ReportData { get; init; }

    /// <summary>The attribute flags (u64 at body offset 48).</summary>
    public SgxAttributeFlags AttributeFlags => (SgxAttributeFlags)BinaryPrimitives.ReadUInt64LittleEndian(Attributes.Span);

    /// <summary>XFRM (u64 at body offset 56).</summary>
    public ulong Xfrm => BinaryPrimitives.ReadUInt64LittleEndian(Attributes.Span[8..]);

    /// <summary>True when the enclave runs in debug mode.</summary>
    public bool IsDebug => (AttributeFlags & SgxAttributeFlags.Debug) != 0;

    /// <summary>The 384 wire bytes of this body (what a QE report signature covers); shorter fields are zero-padded.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[QuoteLayout.SgxReportBodySize];
        QuoteWriter.WriteSgxBody(this, bytes);
        return bytes;
    }
}

/// <summary>A TD report body (TDX 1.0, or TDX 1.5 with <see cref="TeeTcbSvn2"/> and <see cref="MrServiceTd"/>).</summary>
public sealed record TdReportBody
{
    public required ReadOnlyMemory<byte> TeeTcbSvn { get; init; }

    public required ReadOnlyMemory<byte> MrSeam { get; init; }

    public required ReadOnlyMemory<byte> MrSignerSeam { get; init; }

    public required ReadOnlyMemory<byte> SeamAttributes { get; init; }

    /// <summary>TD_ATTRIBUTES as the 8 wire bytes; <see cref="Attributes"/> decodes them.</summary>
    public required ReadOnlyMemory<byte> TdAttributes { get; init; }

    /// <summary>XFAM as the 8 wire bytes; <see cref="XfamFeatures"/> decodes them.</summary>
    public required ReadOnlyMemory<byte> Xfam { get; init; }

    public required ReadOnlyMemory<byte> MrTd { get; init; }

    public required ReadOnlyMemory<byte> MrConfigId { get; init; }

    public required ReadOnlyMemory<byte> MrOwner { get; init; }

    public required ReadOnlyMemory<byte> MrOwnerConfig { get; init; }

    public required ReadOnlyMemory<byte> Rtmr0 { get; init; }

    public required ReadOnlyMemory<byte> Rtmr1 { get; init; }

    public required ReadOnlyMemory<byte> Rtmr2 { get; init; }

    public required ReadOnlyMemory<byte> Rtmr3 { get; init; }

    public required ReadOnlyMemory<byte> ReportData { get; init; }

    /// <summary>TD 1.5 only: the current TEE TCB SVN after TD-preserving updates.</summary>
    public ReadOnlyMemory<byte>? TeeTcbSvn2 { get; init; }

    /// <summary>TD 1.5 only: SHA-384 over bound service-TD information (zero if none).</summary>
    public ReadOnlyMemory<byte>? MrServiceTd { get; init; }

    /// <summary>The four RTMRs in order.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Rtmrs => [Rtmr0, Rtmr1, Rtmr2, Rtmr3];

    /// <summary>TD_ATTRIBUTES as a little-endian u64.</summary>
    public TdAttributes Attributes => (TdAttributes)BinaryPrimitives.ReadUInt64LittleEndian(TdAttributes.Span);

    /// <summary>XFAM as a little-endian u64.</summary>
    public XfamFeatures XfamFeatures => (XfamFeatures)BinaryPrimitives.ReadUInt64LittleEndian(Xfam.Span);

    /// <summary>True when the TD is under debug (any of the TUD bits 0..7 set).</summary>
    public bool IsDebug => ((ulong)Attributes & TdAttributeNames.TudMask) != 0;

    /// <summary>TDX module minor SVN (TEE_TCB_SVN byte 0).</summary>
    public byte TdxModuleSvn => TeeTcbSvn.Span[0];

    /// <summary>TDX module major version (TEE_TCB_SVN byte 1); 0 means no module identity evaluation.</summary>
    public byte TdxModuleMajorVersion => TeeTcbSvn.Span[1];
}

/// <summary>Certification data: its type and its payload, exactly as carried.</summary>
public sealed record CertificationData
{
    public required CertificationDataType Type { get; init; }

    public required ReadOnlyMemory<byte> Data { get; init; }
}

/// <summary>
/// The signature data that follows the signed region: the quote signature, the attestation key, the QE report with
/// its PCK signature and authentication data, and the certification data. For v4/v5 the QE report sits inside
/// outer certification data of type 6; for v3 it sits directly here.
/// </summary>
public sealed record QuoteSignatureData
{
    /// <summary>ECDSA P-256 r‖s over SHA-256 of the signed region.</summary>
    public required ReadOnlyMemory<byte> QuoteSignature { get; init; }

    /// <summary>Attestation public key x‖y (64 bytes, no 0x04 prefix).</summary>
    public required ReadOnlyMemory<byte> AttestationPublicKey { get; init; }

    /// <summary>v4/v5: the outer certification data type (6); null for v3.</summary>
    public CertificationDataType? OuterCertificationDataType { get; init; }

    /// <summary>v4/v5: the outer certification data size; null for v3.</summary>
    public int? OuterCertificationDataSize { get; init; }

    /// <summary>The 384 raw bytes of the QE report (what the QE report signature covers).</summary>
    public required ReadOnlyMemory<byte> QeReportBytes { get; init; }

    public required SgxReportBody QeReport { get; init; }

    /// <summary>ECDSA P-256 r‖s by the PCK key over <see cref="QeReportBytes"/>.</summary>
    public required ReadOnlyMemory<byte> QeReportSignature { get; init; }

    public required ReadOnlyMemory<byte> QeAuthData { get; init; }

    /// <summary>The inner certification data (type 5 = PEM PCK chain in practice).</summary>
    public required CertificationData CertificationData { get; init; }
}
