namespace PrivateMl.Attestation.Verification;

/// <summary>
/// Stable error codes: the contract between verifiers, policy and their callers. Add new codes at the end of their
/// group; never renumber or rename (scripts and JSON output depend on the names).
/// </summary>
public enum ErrorCode
{
    // Parsing (1xx)
    QuoteTruncated = 100,
    QuoteTooLarge = 101,
    UnsupportedQuoteVersion = 102,
    UnsupportedTeeType = 103,
    UnsupportedAttestationKeyType = 104,
    UnsupportedBodyType = 105,
    UnsupportedCertificationDataType = 106,
    MalformedCertificationData = 107,
    FieldTooLarge = 108,
    MalformedInput = 109,
    TrailingData = 110,
    EventLogMalformed = 111,
    EventLogTooLarge = 112,
    UnsupportedQeVendor = 113,

    // Certificates and CRLs (2xx)
    PckChainUntrusted = 200,
    PckChainMalformed = 201,
    CertificateExpired = 202,
    CertificateNotYetValid = 203,
    CertificateRevoked = 204,
    CrlSignatureInvalid = 205,
    CrlExpired = 206,
    CrlNotYetValid = 207,
    CrlIssuerMismatch = 208,
    SigningChainUntrusted = 209,
    PckExtensionMalformed = 210,

    // Collateral (3xx)
    CollateralMalformed = 300,
    CollateralExpired = 301,
    CollateralNotYetValid = 302,
    TcbInfoSignatureInvalid = 303,
    QeIdentitySignatureInvalid = 304,
    FmspcMismatch = 305,
    PceIdMismatch = 306,
    CollateralTypeMismatch = 307,
    CollateralVersionUnsupported = 308,
    CollateralUnavailable = 309,

    // Quote signatures and bindings (4xx)
    QeReportSignatureInvalid = 400,
    QeReportDataMismatch = 401,
    QuoteSignatureInvalid = 402,
    QeIdentityMismatch = 403,
    AttestationKeyInvalid = 404,
    EventLogDigestMismatch = 405,
    RtmrReplayMismatch = 406,

    // TCB (5xx)
    TcbLevelNotFound = 500,
    TcbRevoked = 501,
    QeTcbLevelNotFound = 502,
    TdxModuleIdentityNotFound = 503,
    TdxModuleMismatch = 504,

    // Policy (6xx)
    TcbStatusNotAccepted = 600,
    AdvisoryNotAccepted = 601,
    DebugTdForbidden = 602,
    TdAttributesNotAccepted = 603,
    XfamNotAccepted = 604,
    MrSeamNotAccepted = 605,
    TeeTcbSvnTooLow = 606,
    MeasurementMismatch = 607,
    ReportDataMismatch = 608,
    SimulatedEvidenceNotTrusted = 609,
    PolicyInvalid = 610,

    // NVIDIA GPU evidence (7xx)
    GpuEvidenceMalformed = 700,
    GpuEvidenceTooLarge = 701,
    GpuEvidenceLegacyEncoding = 702,
    GpuArchitectureUnsupported = 703,
    SpdmReportTruncated = 704,
    SpdmVersionUnsupported = 705,
    SpdmMessageMalformed = 706,
    SpdmTrailingData = 707,
    GpuNonceMismatch = 708,
    GpuCertificateChainMalformed = 709,
    GpuCertificateChainUntrusted = 710,
    GpuReportSignatureInvalid = 711,
    GpuOpaqueDataMalformed = 712,
    GpuFwidMismatch = 713,
    GpuFwidMissing = 714,
    RimMalformed = 715,
    RimSignatureInvalid = 716,
    RimChainUntrusted = 717,
    RimCertificateExpired = 718,
    RimNotFound = 719,
    RimVersionMismatch = 720,
    RimIndexConflict = 721,
    RimMeasurementMismatch = 722,
    NrasTokenMalformed = 723,
    NrasTokenSignatureInvalid = 724,
    NrasTokenKeyUnknown = 725,
    NrasTokenExpired = 726,
    NrasNonceMismatch = 727,
    NrasSubmodDigestMismatch = 728,
    NrasResultNegative = 729,
    GpuCountMismatch = 730,

    // Client: node reports, bindings, app identity, signed responses (8xx)
    ReportUnavailable = 800,
    ReportMalformed = 801,
    NonceMismatch = 802,
    SigningKeyNotBound = 803,
    ComposeHashMismatch = 804,
    AppIdentityMissing = 805,
    MrConfigIdMismatch = 806,
    ResponseSignatureInvalid = 807,
    ResponseHashMismatch = 808,
    ReceiptInvalid = 809,
    SignerNotAttested = 810,
    GpuEvidenceMissing = 811,

    // Encrypted environment variables (13xx)
    EnvCiphertextMalformed = 1300,
    EnvDecryptionFailed = 1301,
    EnvPayloadInvalid = 1302,
    EnvPublicKeySignatureInvalid = 1303,
    EnvPublicKeySignerUntrusted = 1304,
    EnvPublicKeySignatureStale = 1305,
}
