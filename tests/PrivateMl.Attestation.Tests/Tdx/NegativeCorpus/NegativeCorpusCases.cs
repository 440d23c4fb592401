using System.Text;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Attestation.Tests.Tdx.NegativeCorpus;

/// <summary>The negative corpus: every signature, chain link, CRL, validity window and binding, broken one at a time.</summary>
internal static class NegativeCorpusCases
{
    private static readonly DateTimeOffset Now = CorpusFixture.Now;

    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    public static IReadOnlyList<NegativeCase> All { get; } = Build();

    private static List<NegativeCase> Build() =>
    [
        // ---- Quote framing and header (1xx) ----
        new("QuoteTruncatedInHeader", ErrorCode.QuoteTruncated) { Quote = _ => new QuoteDefects { TruncateTo = 40 } },
        new("QuoteTruncatedInBody", ErrorCode.QuoteTruncated) { Quote = _ => new QuoteDefects { TruncateTo = 600 } },
        new("QuoteTruncatedInSignatureData", ErrorCode.QuoteTruncated) { EditQuote = (_, q) => q[..^100] },
        new("SignatureDataLengthOversized", ErrorCode.QuoteTruncated) { Quote = _ => new QuoteDefects { SignatureDataLengthDelta = 1000 } },
        new("SignatureDataLengthHuge", ErrorCode.FieldTooLarge) { Quote = _ => new QuoteDefects { SignatureDataLengthDelta = 0x7FFF0000 } },
        new("SignatureDataLengthUndersized", ErrorCode.MalformedCertificationData) { Quote = _ => new QuoteDefects { SignatureDataLengthDelta = -10 } },
        new("QuoteOversized", ErrorCode.QuoteTooLarge) { Quote = _ => new QuoteDefects { TrailingBytes = new byte[300 * 1024] } },
        new("VersionTwo", ErrorCode.UnsupportedQuoteVersion) { Quote = _ => new QuoteDefects { Version = 2 } },
        new("VersionSix", ErrorCode.UnsupportedQuoteVersion) { Quote = _ => new QuoteDefects { Version = 6 } },
        new("VersionThreeWithTdxTeeType", ErrorCode.UnsupportedTeeType) { Quote = _ => new QuoteDefects { Version = 3 } },
        new("AttestationKeyTypeP384", ErrorCode.UnsupportedAttestationKeyType) { Quote = _ => new QuoteDefects { AttestationKeyType = 3 } },
        new("TeeTypeUnknown", ErrorCode.UnsupportedTeeType) { Quote = _ => new QuoteDefects { TeeType = 0x42 } },
        new("QeVendorIdNotIntel", ErrorCode.UnsupportedQeVendor) { Quote = _ => new QuoteDefects { QeVendorId = new byte[16] } },

        // ---- Certification data (1xx) ----
        new("OuterCertificationDataType5", ErrorCode.UnsupportedCertificationDataType) { Quote = _ => new QuoteDefects { OuterCertificationDataType = 5 } },
        new("InnerCertificationDataType4", ErrorCode.UnsupportedCertificationDataType) { Quote = _ => new QuoteDefects { InnerCertificationDataType = 4 } },
        new("InnerCertificationDataType9", ErrorCode.UnsupportedCertificationDataType) { Quote = _ => new QuoteDefects { InnerCertificationDataType = 9 } },
        new("OuterCertificationDataSizeOversized", ErrorCode.MalformedCertificationData) { Quote = _ => new QuoteDefects { OuterCertificationDataSizeDelta = 100 } },
        new("OuterCertificationDataSizeUndersized", ErrorCode.MalformedCertificationData) { Quote = _ => new QuoteDefects { OuterCertificationDataSizeDelta = -100 } },
        new("OuterCertificationDataSizeHuge", ErrorCode.FieldTooLarge) { Quote = _ => new QuoteDefects { OuterCertificationDataSizeDelta = 0x7FFF0000 } },
        new("InnerCertificationDataSizeOversized", ErrorCode.MalformedCertificationData) { Quote = _ => new QuoteDefects { InnerCertificationDataSizeDelta = 50 } },
        new("InnerCertificationDataSizeUndersized", ErrorCode.MalformedCertificationData) { Quote = _ => new QuoteDefects { InnerCertificationDataSizeDelta = -50 } },
        new("QeAuthDataSizeOversized", ErrorCode.MalformedCertificationData) { Quote = _ => new QuoteDefects { QeAuthDataSizeDelta = 4064 } },
        new("QeAuthDataSizeHuge", ErrorCode.FieldTooLarge) { Quote = _ => new QuoteDefects { QeAuthDataSizeDelta = 60000 } },

        // ---- PCK chain in the quote (2xx) ----
        new("PckChainWithoutRoot", ErrorCode.PckChainUntrusted) { Quote = p => new QuoteDefects { PckChainPem = SimulatedPki.ToPem(p.Pki.PckCertificate, p.Pki.PckCaCertificate) } },
        new("PckChainReversed", ErrorCode.PckChainUntrusted) { Quote = p => new QuoteDefects { PckChainPem = SimulatedPki.ToPem(p.Pki.RootCertificate, p.Pki.PckCaCertificate, p.Pki.PckCertificate) } },
        new("PckChainNotPem", ErrorCode.PckChainMalformed) { Quote = _ => new QuoteDefects { CertificationData = Encoding.ASCII.GetBytes("not a certificate chain\0") } },
        new("PckChainFromOtherRoot", ErrorCode.PckChainUntrusted)
        {
            EditQuote = (_, _) =>
            {
                using var other = CorpusFixture.NewPlatform();
                return other.CreateQuote(CorpusFixture.ReportData, new byte[48]);
            },
        },
        new("PckLeafSignatureCorrupt", ErrorCode.PckChainUntrusted) { Platform = Pki(o => o with { PckLeaf = new CertificateDefects { CorruptSignature = true } }) },
        new("PckLeafSignedByUnrelatedKey", ErrorCode.PckChainUntrusted) { Platform = Pki(o => o with { PckLeaf = new CertificateDefects { SignedByUnrelatedKey = true } }) },
        new("PckCaSignatureCorrupt", ErrorCode.SigningChainUntrusted) { Platform = Pki(o => o with { PckCa = new CertificateDefects { CorruptSignature = true } }) },
        new("PckCaInQuoteSignatureCorrupt", ErrorCode.PckChainUntrusted)
        {
            Quote = p => new QuoteDefects { PckChainPem = SimulatedPki.ToPem(p.Pki.PckCertificate, CorruptCopy(p.Pki.PckCaCertificate), p.Pki.RootCertificate) },
        },
        new("PckChainRootReplacedByPckCa", ErrorCode.PckChainUntrusted)
        {
            Quote = p => new QuoteDefects { PckChainPem = SimulatedPki.ToPem(p.Pki.PckCertificate, p.Pki.PckCaCertificate, p.Pki.PckCaCertificate) },
        },
        new("PckLeafIssuerNameMismatch", ErrorCode.PckChainUntrusted) { Platform = Pki(o => o with { PckLeaf = new CertificateDefects { IssuerCommonName = "PrivateMl SIMULATED Other CA" } }) },
        new("PckLeafMarkedAsCa", ErrorCode.PckChainUntrusted) { Platform = Pki(o => o with { PckLeaf = new CertificateDefects { CertificateAuthority = true } }) },
        new("PckCaNotMarkedAsCa", ErrorCode.SigningChainUntrusted) { Platform = Pki(o => o with { PckCa = new CertificateDefects { CertificateAuthority = false } }) },
        new("PckLeafExpired", ErrorCode.CertificateExpired) { Platform = Pki(o => o with { PckLeaf = new CertificateDefects { NotBefore = Now.AddYears(-2), NotAfter = Now - Day } }) },
        new("PckLeafNotYetValid", ErrorCode.CertificateNotYetValid) { Platform = Pki(o => o with { PckLeaf = new CertificateDefects { NotBefore = Now + Day, NotAfter = Now.AddYears(2) } }) },
        new("PckCaExpired", ErrorCode.CertificateExpired) { Platform = Pki(o => o with { PckCa = new CertificateDefects { NotBefore = Now.AddYears(-2), NotAfter = Now - Day } }) },
        new("PckCaNotYetValid", ErrorCode.CertificateNotYetValid) { Platform = Pki(o => o with { PckCa = new CertificateDefects { NotBefore = Now + Day, NotAfter = Now.AddYears(2) } }) },

        // ---- PCK SGX extension (2xx) ----
        new("SgxExtensionMissing", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { OmitExtension = true }) },
        new("SgxExtensionWithoutFmspc", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { OmitFmspc = true }) },
        new("SgxExtensionFmspcFiveBytes", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { FmspcLength = 5 }) },
        new("SgxExtensionWithoutPceId", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { OmitPceId = true }) },
        new("SgxExtensionWithoutTcb", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { OmitTcb = true }) },
        new("SgxExtensionExtraEntry", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { AddUnknownEntry = true }) },
        new("SgxExtensionNotDer", ErrorCode.PckExtensionMalformed) { Platform = Sgx(new SgxExtensionDefects { RawValue = new byte[] { 0x30, 0x05, 0x01 } }) },

        // ---- TCB signing chain (2xx) ----
        new("TcbSigningSignatureCorrupt", ErrorCode.SigningChainUntrusted) { Platform = Pki(o => o with { TcbSigning = new CertificateDefects { CorruptSignature = true } }) },
        new("TcbSigningSignedByUnrelatedKey", ErrorCode.SigningChainUntrusted) { Platform = Pki(o => o with { TcbSigning = new CertificateDefects { SignedByUnrelatedKey = true } }) },
        new("TcbSigningIssuerNameMismatch", ErrorCode.SigningChainUntrusted) { Platform = Pki(o => o with { TcbSigning = new CertificateDefects { IssuerCommonName = "PrivateMl SIMULATED Other CA" } }) },
        new("TcbSigningExpired", ErrorCode.CertificateExpired) { Platform = Pki(o => o with { TcbSigning = new CertificateDefects { NotBefore = Now.AddYears(-2), NotAfter = Now - Day } }) },
        new("TcbSigningNotYetValid", ErrorCode.CertificateNotYetValid) { Platform = Pki(o => o with { TcbSigning = new CertificateDefects { NotBefore = Now + Day, NotAfter = Now.AddYears(2) } }) },
        new("TcbInfoIssuerChainIsPckCaChain", ErrorCode.SigningChainUntrusted) { EditCollateral = (p, c) => c with { TcbInfoIssuerChain = p.Pki.PckCrlIssuerChainPem } },
        new("QeIdentityIssuerChainWithoutRoot", ErrorCode.SigningChainUntrusted) { EditCollateral = (p, c) => c with { QeIdentityIssuerChain = SimulatedPki.ToPem(p.Pki.TcbSigningCertificate) } },
        new("RootExpired", ErrorCode.CertificateExpired) { Platform = Pki(o => o with { Root = new CertificateDefects { NotBefore = Now.AddYears(-3), NotAfter = Now - Day } }) },

        // ---- CRLs (2xx) ----
        new("PckLeafRevoked", ErrorCode.CertificateRevoked) { Collateral = p => new SimulatedCollateralOptions { PckCrl = Revoking(p.Pki.PckCertificate.SerialNumberBytes) } },
        new("PckCaRevokedByRootCrl", ErrorCode.CertificateRevoked) { Collateral = p => new SimulatedCollateralOptions { RootCaCrl = Revoking(p.Pki.PckCaCertificate.SerialNumberBytes) } },
        new("TcbSigningRevokedByRootCrl", ErrorCode.CertificateRevoked) { Collateral = p => new SimulatedCollateralOptions { RootCaCrl = Revoking(p.Pki.TcbSigningCertificate.SerialNumberBytes) } },
        new("RootCaCrlSignatureCorrupt", ErrorCode.CrlSignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { RootCaCrl = new SimulatedCrlOptions { CorruptSignature = true } } },
        new("RootCaCrlSignedByUnrelatedKey", ErrorCode.CrlSignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { RootCaCrl = new SimulatedCrlOptions { SignedByUnrelatedKey = true } } },
        new("PckCrlSignatureCorrupt", ErrorCode.CrlSignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { PckCrl = new SimulatedCrlOptions { CorruptSignature = true } } },
        new("PckCrlSignedByUnrelatedKey", ErrorCode.CrlSignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { PckCrl = new SimulatedCrlOptions { SignedByUnrelatedKey = true } } },
        new("RootCaCrlExpired", ErrorCode.CrlExpired) { Collateral = _ => new SimulatedCollateralOptions { RootCaCrl = Window(Now - (30 * Day), Now - Day) } },
        new("RootCaCrlNotYetValid", ErrorCode.CrlNotYetValid) { Collateral = _ => new SimulatedCollateralOptions { RootCaCrl = Window(Now + Day, Now + (30 * Day)) } },
        new("PckCrlExpired", ErrorCode.CrlExpired) { Collateral = _ => new SimulatedCollateralOptions { PckCrl = Window(Now - (30 * Day), Now - Day) } },
        new("PckCrlNotYetValid", ErrorCode.CrlNotYetValid) { Collateral = _ => new SimulatedCollateralOptions { PckCrl = Window(Now + Day, Now + (30 * Day)) } },
        new("RootCaCrlIssuerNameMismatch", ErrorCode.CrlIssuerMismatch) { Collateral = _ => new SimulatedCollateralOptions { RootCaCrl = new SimulatedCrlOptions { IssuerCommonName = "PrivateMl SIMULATED Other Root" } } },
        new("PckCrlIssuerNameMismatch", ErrorCode.CrlIssuerMismatch) { Collateral = _ => new SimulatedCollateralOptions { PckCrl = new SimulatedCrlOptions { IssuerCommonName = "PrivateMl SIMULATED Other CA" } } },
        new("PckCrlIsTheRootCaCrl", ErrorCode.CrlIssuerMismatch) { EditCollateral = (_, c) => c with { PckCrl = c.RootCaCrl } },
        new("RootCaCrlNotDer", ErrorCode.CollateralMalformed) { EditCollateral = (_, c) => c with { RootCaCrl = [0x30, 0x03, 0x02, 0x01] } },

        // ---- TCB info and QE identity (3xx) ----
        new("TcbInfoSignatureCorrupt", ErrorCode.TcbInfoSignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { CorruptSignature = true } } },
        new("TcbInfoSignedByUnrelatedKey", ErrorCode.TcbInfoSignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { SignedByUnrelatedKey = true } } },
        new("TcbInfoEditedAfterSigning", ErrorCode.TcbInfoSignatureInvalid) { EditCollateral = (_, c) => c with { TcbInfo = c.TcbInfo.Replace("\"tcbEvaluationDataNumber\":17", "\"tcbEvaluationDataNumber\":18", StringComparison.Ordinal) } },
        new("QeIdentitySignatureCorrupt", ErrorCode.QeIdentitySignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { CorruptSignature = true } } },
        new("QeIdentitySignedByUnrelatedKey", ErrorCode.QeIdentitySignatureInvalid) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { SignedByUnrelatedKey = true } } },
        new("TcbInfoExpired", ErrorCode.CollateralExpired) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { IssueDate = Now - (30 * Day), NextUpdate = Now - Day } } },
        new("TcbInfoNotYetValid", ErrorCode.CollateralNotYetValid) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { IssueDate = Now + Day, NextUpdate = Now + (30 * Day) } } },
        new("QeIdentityExpired", ErrorCode.CollateralExpired) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { IssueDate = Now - (30 * Day), NextUpdate = Now - Day } } },
        new("QeIdentityNotYetValid", ErrorCode.CollateralNotYetValid) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { IssueDate = Now + Day, NextUpdate = Now + (30 * Day) } } },
        new("AllCollateralExpiredAtVerifyTime", ErrorCode.CrlExpired) { VerifyOffset = TimeSpan.FromDays(31) },
        new("TcbInfoIdSgx", ErrorCode.CollateralTypeMismatch) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Id = "SGX" } } },
        new("TcbInfoVersion2", ErrorCode.CollateralVersionUnsupported) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Version = 2 } } },
        new("QeIdentityIdQe", ErrorCode.CollateralTypeMismatch) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { Id = "QE" } } },
        new("QeIdentityVersion1", ErrorCode.CollateralVersionUnsupported) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { Version = 1 } } },
        new("TcbInfoWellSignedButNotJson", ErrorCode.CollateralMalformed) { EditCollateral = (p, c) => Resigned(p, c, "{\"id\":\"TDX\",") },
        new("TcbInfoComponentArraysOf15", ErrorCode.CollateralMalformed) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { ComponentCount = 15 } } },
        new("TcbInfoUnknownStatus", ErrorCode.CollateralMalformed) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Levels = [new SimulatedTcbLevel { StatusText = "Splendid" }] } } },
        new("TcbInfoFmspcMismatch", ErrorCode.FmspcMismatch) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Fmspc = new byte[] { 0xB0, 0xC0, 0x6F, 0, 0, 0 } } } },
        new("TcbInfoPceIdMismatch", ErrorCode.PceIdMismatch) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { PceId = new byte[] { 0x00, 0x01 } } } },

        // ---- Quote signatures and bindings (4xx) ----
        new("QuoteSignatureCorrupt", ErrorCode.QuoteSignatureInvalid) { Quote = _ => new QuoteDefects { CorruptQuoteSignature = true } },
        new("QuoteSignedByUnrelatedKey", ErrorCode.QuoteSignatureInvalid) { Quote = _ => new QuoteDefects { SignQuoteWithUnrelatedKey = true } },
        new("ReportDataEditedAfterSigning", ErrorCode.QuoteSignatureInvalid) { EditQuote = (_, q) => Flip(q, 568 + 5) },
        new("MrTdEditedAfterSigning", ErrorCode.QuoteSignatureInvalid) { EditQuote = (_, q) => Flip(q, 184) },
        new("HeaderUserDataEditedAfterSigning", ErrorCode.QuoteSignatureInvalid) { EditQuote = (_, q) => Flip(q, 30) },
        new("AttestationKeyNotOnCurve", ErrorCode.AttestationKeyInvalid) { Quote = _ => new QuoteDefects { AttestationPublicKey = Enumerable.Repeat((byte)0x01, 64).ToArray() } },
        new("QeReportSignatureCorrupt", ErrorCode.QeReportSignatureInvalid) { Quote = _ => new QuoteDefects { CorruptQeReportSignature = true } },
        new("QeReportSignedByUnrelatedKey", ErrorCode.QeReportSignatureInvalid) { Quote = _ => new QuoteDefects { SignQeReportWithUnrelatedKey = true } },
        new("QeReportDataHashMismatch", ErrorCode.QeReportDataMismatch) { Quote = _ => new QuoteDefects { QeReportDataMismatch = true } },
        new("QeReportDataTailNotZero", ErrorCode.QeReportDataMismatch) { Quote = _ => new QuoteDefects { NonZeroQeReportDataTail = true } },
        new("QeReportMrSignerMismatch", ErrorCode.QeIdentityMismatch) { Quote = _ => new QuoteDefects { QeMrSigner = new byte[32] } },
        new("QeReportIsvProdIdMismatch", ErrorCode.QeIdentityMismatch) { Quote = _ => new QuoteDefects { QeIsvProdId = 1 } },
        new("QeReportDebugAttribute", ErrorCode.QeIdentityMismatch) { Quote = _ => new QuoteDefects { QeAttributes = Convert.FromHexString("1700000000000000e700000000000000") } },
        new("QeReportMiscSelectMismatch", ErrorCode.QeIdentityMismatch) { Quote = _ => new QuoteDefects { QeMiscSelect = 1 } },
        new("QeIdentityMrSignerMismatch", ErrorCode.QeIdentityMismatch) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { MrSigner = new byte[32] } } },
        new("QeIdentityIsvProdIdMismatch", ErrorCode.QeIdentityMismatch) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { IsvProdId = 7 } } },

        // ---- TCB levels and TDX module (5xx) ----
        new("NoPlatformTcbLevelMatches", ErrorCode.TcbLevelNotFound) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Levels = [new SimulatedTcbLevel { SvnOffset = 1 }] } } },
        new("NoPlatformTcbLevelMatchesPceSvn", ErrorCode.TcbLevelNotFound) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Levels = [new SimulatedTcbLevel { PceSvnOffset = 1 }] } } },
        new("PlatformTcbLevelRevoked", ErrorCode.TcbRevoked) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Levels = TcbInfoOptions.LevelsForPlatformStatus(TcbStatus.Revoked, "INTEL-SA-00999") } } },
        new("NoQeTcbLevelMatches", ErrorCode.QeTcbLevelNotFound) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { Levels = [new SimulatedTcbLevel { SvnOffset = 1 }] } } },
        new("QeTcbLevelRevoked", ErrorCode.TcbRevoked) { Collateral = _ => new SimulatedCollateralOptions { QeIdentity = new QeIdentityOptions { Levels = [new SimulatedTcbLevel { Status = TcbStatus.Revoked }] } } },
        new("TdxModuleIdentitiesMissing", ErrorCode.TdxModuleIdentityNotFound) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { OmitModuleIdentities = true } } },
        new("TdxModuleIdentityForOtherVersion", ErrorCode.TdxModuleIdentityNotFound) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { ModuleIdentityId = "TDX_02" } } },
        new("TdxModuleMrSignerMismatch", ErrorCode.TdxModuleMismatch) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { ModuleMrSigner = Enumerable.Repeat((byte)0x11, 48).ToArray() } } },
        new("SeamAttributesNotZero", ErrorCode.TdxModuleMismatch) { Platform = new SimulatedPlatformOptions { Profile = new TdProfile { SeamAttributes = new byte[] { 1, 0, 0, 0, 0, 0, 0, 0 } } } },
        new("NoTdxModuleTcbLevelMatches", ErrorCode.TcbLevelNotFound) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { ModuleLevels = [new SimulatedTcbLevel { SvnOffset = 1 }] } } },
        new("TdxModuleTcbLevelRevoked", ErrorCode.TcbRevoked) { Collateral = _ => new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { ModuleLevels = [new SimulatedTcbLevel { Status = TcbStatus.Revoked }] } } },
    ];

    private static SimulatedPlatformOptions Pki(Func<SimulatedPkiOptions, SimulatedPkiOptions> edit) => new() { Pki = edit(new SimulatedPkiOptions()) };

    private static SimulatedPlatformOptions Sgx(SgxExtensionDefects defects) => new() { Pki = new SimulatedPkiOptions { SgxExtension = defects } };

    private static SimulatedCrlOptions Revoking(ReadOnlyMemory<byte> serial) => new() { RevokedSerials = [serial] };

    private static SimulatedCrlOptions Window(DateTimeOffset thisUpdate, DateTimeOffset nextUpdate) => new() { ThisUpdate = thisUpdate, NextUpdate = nextUpdate };

    private static System.Security.Cryptography.X509Certificates.X509Certificate2 CorruptCopy(
        System.Security.Cryptography.X509Certificates.X509Certificate2 certificate)
    {
        var der = certificate.RawData;
        der[^1] ^= 0x01;
        return System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(der);
    }

    private static byte[] Flip(byte[] quote, int offset)
    {
        var copy = (byte[])quote.Clone();
        copy[offset] ^= 0x01;
        return copy;
    }

    private static PrivateMl.Attestation.Tdx.Collateral.DcapCollateral Resigned(
        SimulatedTdxPlatform platform, PrivateMl.Attestation.Tdx.Collateral.DcapCollateral collateral, string tcbInfo) =>
        collateral with { TcbInfo = tcbInfo, TcbInfoSignature = platform.Pki.SignWithTcbSigningKey(Encoding.UTF8.GetBytes(tcbInfo)) };
}
