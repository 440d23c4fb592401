using System.Security.Cryptography;
using System.Text;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx;

/// <summary>
/// Offline DCAP verification of TDX and SGX quotes: a pure function of quote bytes, collateral and time (no I/O, no
/// clock). Thread-safe; one instance may be shared, and it remembers verified collateral by its exact bytes
/// (<see cref="DcapVerifierOptions.CollateralCacheCapacity"/>) while re-checking every time-dependent and
/// quote-specific step on each call.
/// </summary>
public sealed partial class DcapVerifier
{
    /// <summary>Check names, in the order <see cref="Verify(ReadOnlySpan{byte}, DcapCollateral, DateTimeOffset)"/> runs them.</summary>
    public static class CheckNames
    {
        public const string QuoteFormat = "quote.format";
        public const string TrustAnchor = "trust-anchor";
        public const string RootCaCrl = "root-ca-crl";
        public const string TcbInfoIssuerChain = "tcb-info.issuer-chain";
        public const string TcbInfoSignature = "tcb-info.signature";
        public const string TcbInfoValidity = "tcb-info.validity";
        public const string TcbInfoType = "tcb-info.type";
        public const string QeIdentityIssuerChain = "qe-identity.issuer-chain";
        public const string QeIdentitySignature = "qe-identity.signature";
        public const string QeIdentityValidity = "qe-identity.validity";
        public const string QeIdentityType = "qe-identity.type";
        public const string PckCrl = "pck-crl";
        public const string PckChain = "pck-chain";
        public const string PckRevocation = "pck-revocation";
        public const string PckExtension = "pck-extension";
        public const string QeReportSignature = "qe-report.signature";
        public const string QeReportBinding = "qe-report.binding";
        public const string QeIdentityMatch = "qe-identity.match";
        public const string QuoteSignature = "quote.signature";
        public const string TcbInfoPlatform = "tcb-info.platform";
        public const string TdxModuleIdentity = "tdx-module.identity";
        public const string PlatformTcbLevel = "tcb.platform-level";
        public const string TdxModuleTcbLevel = "tcb.tdx-module-level";
        public const string QeTcbLevel = "tcb.qe-level";
        public const string TcbStatus = "tcb.status";
        public const string TdRelaunch = "tcb.td-relaunch";

        /// <summary>All names in order.</summary>
        public static IReadOnlyList<string> All { get; } =
        [
            QuoteFormat, TrustAnchor, RootCaCrl, TcbInfoIssuerChain, TcbInfoSignature, TcbInfoValidity, TcbInfoType,
            QeIdentityIssuerChain, QeIdentitySignature, QeIdentityValidity, QeIdentityType, PckCrl, PckChain, PckRevocation,
            PckExtension, QeReportSignature, QeReportBinding, QeIdentityMatch, QuoteSignature, TcbInfoPlatform,
            TdxModuleIdentity, PlatformTcbLevel, TdxModuleTcbLevel, QeTcbLevel, TcbStatus, TdRelaunch,
        ];
    }

    private readonly ParsedCertificate _root;

    public DcapVerifier()
        : this(new DcapVerifierOptions())
    {
    }

    public DcapVerifier(DcapVerifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.TrustsIntelRoot && !options.AllowSimulated)
        {
            throw new ArgumentException("a trust anchor other than the Intel SGX Root CA requires AllowSimulated = true", nameof(options));
        }

        if (options.CollateralCacheCapacity < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "CollateralCacheCapacity must not be negative");
        }

        Options = options;
        try
        {
            _root = ParsedCertificate.Parse(options.TrustedRootCertificate.ToArray(), ErrorCode.PckChainUntrusted);
        }
        catch (AttestationException ex)
        {
            throw new ArgumentException("the trusted root certificate is not a P-256 X.509 certificate: " + ex.Message, nameof(options), ex);
        }

        if (!_root.IssuerName.Span.SequenceEqual(_root.SubjectName.Span) || !_root.IsSignedBy(_root) || !_root.IsCa)
        {
            throw new ArgumentException("the trusted root certificate must be a self-signed CA certificate", nameof(options));
        }
    }

    public DcapVerifierOptions Options { get; }

    /// <summary>
    /// Verifies a quote against its collateral at the instant <paramref name="now"/>. Never throws for bad input:
    /// every problem is a failed <see cref="CheckResult"/> with an <see cref="ErrorCode"/>. Checks, in order (dcap-qvl's
    /// trust-chain order): quote format; trust anchor; root CA CRL (issuer, signature, thisUpdate ≤ now &lt; nextUpdate);
    /// TCB info issuer chain, signature over its exact bytes, issueDate ≤ now ≤ nextUpdate, id/version for the TEE;
    /// the same four for the QE identity; PCK CRL (issuer chain, issuer, signature, window); PCK chain (leaf → PCK CA →
    /// trusted root, names, signatures, CA flags, validity); PCK revocation (root CA CRL and PCK CRL); PCK SGX
    /// extension; QE report signature by the PCK key; QE report_data = SHA-256(attestation key ‖ QE auth data) ‖ 0³²;
    /// QE report against the QE identity; quote signature by the attestation key; FMSPC and PCE-ID against the TCB
    /// info; TDX module identity; platform TCB level; TDX module TCB level; QE TCB level; merged status (Revoked fails);
    /// for TD 1.5 reports, the current TCB from TEE_TCB_SVN2 and whether a relaunch is advised.
    /// </summary>
    public QuoteVerificationResult Verify(ReadOnlySpan<byte> quote, DcapCollateral collateral, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(collateral);
        TdxQuote? parsed = null;
        AttestationException? parseError = null;
        if (!TdxQuote.TryParse(quote, out parsed, out parseError))
        {
            parsed = null;
        }

        return VerifyCore(parsed, parseError, collateral, now);
    }

    /// <summary>Verifies an already parsed quote (its <see cref="TdxQuote.Bytes"/> must be the bytes it was parsed from).</summary>
    public QuoteVerificationResult Verify(TdxQuote quote, DcapCollateral collateral, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(quote);
        ArgumentNullException.ThrowIfNull(collateral);
        return VerifyCore(quote, null, collateral, now);
    }

    private QuoteVerificationResult VerifyCore(TdxQuote? quote, AttestationException? parseError, DcapCollateral collateral, DateTimeOffset now)
    {
        var checks = new List<CheckResult>(CheckNames.All.Count);
        var facts = GetCollateralFacts(collateral);
        var simulated = !Options.TrustsIntelRoot;

        // 1. Quote format.
        if (quote is null)
        {
            checks.Add(CheckResult.Fail(CheckNames.QuoteFormat, parseError?.Code ?? ErrorCode.MalformedInput, "the quote could not be parsed: " + parseError?.Message));
        }
        else if (!quote.Header.QeVendorId.Span.SequenceEqual(QuoteLayout.IntelQeVendorId))
        {
            checks.Add(CheckResult.Fail(CheckNames.QuoteFormat, ErrorCode.UnsupportedQeVendor, $"QE vendor ID {Hex(quote.Header.QeVendorId)} is not Intel's"));
            quote = null;
        }
        else
        {
            checks.Add(CheckResult.Pass(CheckNames.QuoteFormat, $"{(quote.IsTdx ? "TDX" : "SGX")} quote v{quote.Header.Version}, {Describe(quote.BodyKind)} body, Intel QE"));
        }

        // 2. Trust anchor.
        checks.Add(simulated
            ? CheckResult.Pass(CheckNames.TrustAnchor, $"SIMULATED: chains must end in the non-Intel root \"{_root.SubjectCommonName}\" (AllowSimulated)")
            : CheckResult.Pass(CheckNames.TrustAnchor, "chains must end in the embedded Intel SGX Root CA"));

        // 3. Root CA CRL.
        checks.Add(CheckRootCaCrl(facts, now));

        // 4-7. TCB info.
        checks.Add(CheckIssuerChain(CheckNames.TcbInfoIssuerChain, "TCB info issuer chain", facts.TcbInfoChain, facts, now));
        checks.Add(CheckSignedJson(CheckNames.TcbInfoSignature, "TCB info", facts.TcbInfoChain, facts.TcbInfo, facts.TcbInfoFailure));
        checks.Add(facts.TcbInfo is { } tcbInfo
            ? CheckCollateralWindow(CheckNames.TcbInfoValidity, "TCB info", tcbInfo.IssueDate, tcbInfo.NextUpdate, now)
            : CheckResult.Skip(CheckNames.TcbInfoValidity, "no verified TCB info"));
        checks.Add(CheckTcbInfoType(quote, facts.TcbInfo));

        // 8-11. QE identity.
        checks.Add(CheckIssuerChain(CheckNames.QeIdentityIssuerChain, "QE identity issuer chain", facts.QeIdentityChain, facts, now));
        checks.Add(CheckSignedJson(CheckNames.QeIdentitySignature, "QE identity", facts.QeIdentityChain, facts.QeIdentity, facts.QeIdentityFailure));
        checks.Add(facts.QeIdentity is { } qeIdentity
            ? CheckCollateralWindow(CheckNames.QeIdentityValidity, "QE identity", qeIdentity.IssueDate, qeIdentity.NextUpdate, now)
            : CheckResult.Skip(CheckNames.QeIdentityValidity, "no verified QE identity"));
        checks.Add(CheckQeIdentityType(quote, facts.QeIdentity));

        // 12. PCK CRL.
        checks.Add(CheckPckCrl(facts, now));

        // 13-15. PCK chain, revocation, SGX extension.
        var (chainCheck, leaf, ca) = CheckPckChain(quote, collateral, facts, now);
        checks.Add(chainCheck);
        checks.Add(CheckPckRevocation(leaf, ca, facts));
        var (extensionCheck, pck, caType) = CheckPckExtension(leaf, ca);
        checks.Add(extensionCheck);

        // 16-19. Signatures and bindings inside the quote.
        checks.Add(CheckQeReportSignature(quote, leaf));
        checks.Add(CheckQeReportBinding(quote));
        checks.Add(CheckQeIdentityMatch(quote, facts.QeIdentity));
        checks.Add(CheckQuoteSignature(quote));

        // 20-25. TCB.
        checks.Add(CheckTcbInfoPlatform(pck, facts.TcbInfo));
        var tcb = new TcbEvaluation();
        checks.Add(CheckTdxModuleIdentity(quote, facts.TcbInfo, tcb));
        checks.Add(CheckPlatformTcbLevel(quote, pck, facts.TcbInfo, tcb));
        checks.Add(CheckTdxModuleTcbLevel(quote, tcb));
        checks.Add(CheckQeTcbLevel(quote, facts.QeIdentity, tcb));
        checks.Add(CheckMergedStatus(tcb));
        checks.Add(CheckTdRelaunch(quote, pck, facts.TcbInfo, tcb));

        return new QuoteVerificationResult
        {
            Checks = checks,
            VerifiedAt = now,
            IsSimulated = simulated,
            Quote = quote,
            Pck = pck,
            PckCaType = caType,
            Status = tcb.Merged,
            PlatformTcbStatus = tcb.Platform?.Status,
            TdxModuleTcbStatus = tcb.Module?.Status,
            QeTcbStatus = tcb.Qe?.Status,
            AdvisoryIds = tcb.AdvisoryIds,
            PlatformTcbLevel = tcb.Platform,
            TdxModuleTcbLevel = tcb.Module,
            QeTcbLevel = tcb.Qe,
            TcbDate = tcb.EarliestDate,
            CurrentTcbStatus = tcb.Current,
            TdRelaunchAdvised = tcb.RelaunchAdvised,
            Shortfalls = tcb.Shortfalls,
            ShortfallsToUpToDate = tcb.ShortfallsToUpToDate,
            TcbEvaluationDataNumber = facts.TcbInfo?.TcbEvaluationDataNumber,
            TcbInfoIssueDate = facts.TcbInfo?.IssueDate,
            QeIdentityIssueDate = facts.QeIdentity?.IssueDate,
        };
    }

    private CheckResult CheckRootCaCrl(CollateralFacts facts, DateTimeOffset now)
    {
        const string Name = CheckNames.RootCaCrl;
        if (facts.RootCrlFailure is { } f)
        {
            return CheckResult.Fail(Name, f.Code, f.Detail);
        }

        var crl = facts.RootCrl!;
        if (CrlWindow(Name, "root CA CRL", crl, now) is { } window)
        {
            return window;
        }

        if (crl.Revokes(_root))
        {
            return CheckResult.Fail(Name, ErrorCode.CertificateRevoked, "the root CA CRL revokes the trusted root itself");
        }

        return CheckResult.Pass(Name, $"signed by the root, current until {Time(crl.NextUpdate)}, {crl.RevokedSerials.Count} revoked");
    }

    private CheckResult CheckIssuerChain(string name, string what, ChainFacts chain, CollateralFacts facts, DateTimeOffset now)
    {
        if (chain.Failure is { } f)
        {
            return CheckResult.Fail(name, f.Code, f.Detail);
        }

        var signer = chain.Signer!;
        if ((CertificateWindow(name, signer, now) ?? CertificateWindow(name, _root, now)) is { } window)
        {
            return window;
        }

        if (facts.RootCrl is { } rootCrl && rootCrl.Revokes(signer))
        {
            return CheckResult.Fail(name, ErrorCode.CertificateRevoked, $"\"{signer.SubjectCommonName}\" (serial {signer.SerialHex}) is revoked by the root CA CRL");
        }

        return CheckResult.Pass(name, $"\"{signer.SubjectCommonName}\" issued and signed by the trusted root, valid until {Time(signer.NotAfter)}");
    }

    private static CheckResult CheckSignedJson<T>(string name, string what, ChainFacts chain, T? value, Failure? failure)
        where T : class
    {
        if (chain.Signer is null)
        {
            return CheckResult.Skip(name, $"the {what} issuer chain is not trusted");
        }

        return failure is { } f
            ? CheckResult.Fail(name, f.Code, f.Detail)
            : CheckResult.Pass(name, $"signed by \"{chain.Signer.SubjectCommonName}\" over its exact bytes");
    }

    private static CheckResult CheckCollateralWindow(string name, string what, DateTimeOffset issueDate, DateTimeOffset nextUpdate, DateTimeOffset now)
    {
        if (now < issueDate)
        {
            return CheckResult.Fail(name, ErrorCode.CollateralNotYetValid, $"the {what} is issued {Time(issueDate)}, after the verification time {Time(now)}");
        }

        if (now > nextUpdate)
        {
            return CheckResult.Fail(name, ErrorCode.CollateralExpired, $"the {what} expired at its nextUpdate {Time(nextUpdate)}, before {Time(now)}");
        }

        return CheckResult.Pass(name, $"current from {Time(issueDate)} to {Time(nextUpdate)}");
    }

    private static CheckResult CheckTcbInfoType(TdxQuote? quote, TcbInfo? info)
    {
        const string Name = CheckNames.TcbInfoType;
        if (quote is null || info is null)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "no verified TCB info");
        }

        var expected = quote.IsTdx ? "TDX" : "SGX";
        return info.Id == expected
            ? CheckResult.Pass(Name, $"TCB info \"{info.Id}\" v{info.Version}, evaluation data number {info.TcbEvaluationDataNumber}")
            : CheckResult.Fail(Name, ErrorCode.CollateralTypeMismatch, $"the TCB info is for \"{info.Id}\" but the quote is {expected}");
    }

    private static CheckResult CheckQeIdentityType(TdxQuote? quote, QeIdentity? identity)
    {
        const string Name = CheckNames.QeIdentityType;
        if (quote is null || identity is null)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "no verified QE identity");
        }

        var expected = quote.IsTdx ? "TD_QE" : "QE";
        return identity.Id == expected
            ? CheckResult.Pass(Name, $"QE identity \"{identity.Id}\" v{identity.Version}")
            : CheckResult.Fail(Name, ErrorCode.CollateralTypeMismatch, $"the QE identity is \"{identity.Id}\" but a {(quote.IsTdx ? "TDX" : "SGX")} quote needs \"{expected}\"");
    }

    private CheckResult CheckPckCrl(CollateralFacts facts, DateTimeOffset now)
    {
        const string Name = CheckNames.PckCrl;
        if (facts.PckCrlChain.Failure is { } chainFailure)
        {
            return CheckResult.Fail(Name, chainFailure.Code, chainFailure.Detail);
        }

        if (facts.PckCrlFailure is { } f)
        {
            return CheckResult.Fail(Name, f.Code, f.Detail);
        }

        var ca = facts.PckCrlChain.Signer!;
        var crl = facts.PckCrl!;
        if ((CertificateWindow(Name, ca, now) ?? CertificateWindow(Name, _root, now) ?? CrlWindow(Name, "PCK CRL", crl, now)) is { } window)
        {
            return window;
        }

        if (facts.RootCrl is { } rootCrl && rootCrl.Revokes(ca))
        {
            return CheckResult.Fail(Name, ErrorCode.CertificateRevoked, $"the PCK CRL issuer \"{ca.SubjectCommonName}\" is revoked by the root CA CRL");
        }

        return CheckResult.Pass(Name, $"issued and signed by \"{ca.SubjectCommonName}\", current until {Time(crl.NextUpdate)}, {crl.RevokedSerials.Count} revoked");
    }

    private (CheckResult Check, ParsedCertificate? Leaf, ParsedCertificate? Ca) CheckPckChain(TdxQuote? quote, DcapCollateral collateral, CollateralFacts facts, DateTimeOffset now)
    {
        const string Name = CheckNames.PckChain;
        if (quote is null)
        {
            return (CheckResult.Skip(Name, "no parsed quote"), null, null);
        }

        try
        {
            var cert = quote.Signature.CertificationData;
            List<byte[]> ders;
            if (cert.Type == CertificationDataType.PckCertificateChain)
            {
                ders = PemChain.Decode(Encoding.ASCII.GetString(cert.Data.Span), ErrorCode.PckChainMalformed, "PCK certificate chain in the quote");
            }
            else if (collateral.PckCertificateChain is { } pem)
            {
                ders = PemChain.Decode(pem, ErrorCode.PckChainMalformed, "PCK certificate chain in the collateral");
            }
            else
            {
                return (CheckResult.Fail(Name, ErrorCode.UnsupportedCertificationDataType, $"the quote carries certification data type {(int)cert.Type}, not a PCK certificate chain (5), and the collateral has none"), null, null);
            }

            if (ders.Count != 3)
            {
                return (CheckResult.Fail(Name, ErrorCode.PckChainUntrusted, $"the PCK chain has {ders.Count} certificates; 3 (PCK, PCK CA, root) are expected"), null, null);
            }

            if (!ders[2].AsSpan().SequenceEqual(_root.Der.Span))
            {
                return (CheckResult.Fail(Name, ErrorCode.PckChainUntrusted, "the PCK chain does not end in the trusted root certificate"), null, null);
            }

            // The PCK CA is normally byte-identical to the PCK CRL issuer, already verified against the root.
            ParsedCertificate ca;
            if (facts.PckCrlChain.Signer is { } known && ders[1].AsSpan().SequenceEqual(known.Der.Span))
            {
                ca = known;
            }
            else
            {
                ca = ParsedCertificate.Parse(ders[1], ErrorCode.PckChainMalformed);
                if (!IsPckCaName(ca.SubjectCommonName))
                {
                    return (CheckResult.Fail(Name, ErrorCode.PckChainUntrusted, $"the PCK CA is \"{ca.SubjectCommonName}\", not a PCK Platform or Processor CA"), null, null);
                }

                if (CheckIssuedByRoot(ca, "PCK chain", expectCa: true, ErrorCode.PckChainUntrusted) is { } caFailure)
                {
                    return (CheckResult.Fail(Name, caFailure.Code, caFailure.Detail), null, null);
                }
            }

            var leaf = ParsedCertificate.Parse(ders[0], ErrorCode.PckChainMalformed);
            if (!leaf.SubjectCommonName.Contains(PckLeafPhrase, StringComparison.Ordinal))
            {
                return (CheckResult.Fail(Name, ErrorCode.PckChainUntrusted, $"the PCK leaf is \"{leaf.SubjectCommonName}\", not an \"{PckLeafPhrase}\""), null, null);
            }

            if (!leaf.IssuerName.Span.SequenceEqual(ca.SubjectName.Span))
            {
                return (CheckResult.Fail(Name, ErrorCode.PckChainUntrusted, $"the PCK leaf is issued by \"{leaf.IssuerCommonName}\", not by \"{ca.SubjectCommonName}\""), null, null);
            }

            if (!leaf.IsSignedBy(ca))
            {
                return (CheckResult.Fail(Name, ErrorCode.PckChainUntrusted, $"the PCK leaf's signature does not verify under \"{ca.SubjectCommonName}\""), null, null);
            }

            if (CheckRole(leaf, "PCK chain", expectCa: false, ErrorCode.PckChainUntrusted) is { } role)
            {
                return (CheckResult.Fail(Name, role.Code, role.Detail), null, null);
            }

            if ((CertificateWindow(Name, leaf, now) ?? CertificateWindow(Name, ca, now) ?? CertificateWindow(Name, _root, now)) is { } window)
            {
                return (window, null, null);
            }

            return (CheckResult.Pass(Name, $"PCK certificate (serial {leaf.SerialHex}) ← \"{ca.SubjectCommonName}\" ← trusted root; all valid at {Time(now)}"), leaf, ca);
        }
        catch (AttestationException ex)
        {
            return (CheckResult.Fail(Name, ex.Code, ex.Message), null, null);
        }
    }

    private static CheckResult CheckPckRevocation(ParsedCertificate? leaf, ParsedCertificate? ca, CollateralFacts facts)
    {
        const string Name = CheckNames.PckRevocation;
        if (leaf is null || ca is null)
        {
            return CheckResult.Skip(Name, "no trusted PCK chain");
        }

        if (facts.RootCrl is not { } rootCrl || facts.PckCrl is not { } pckCrl)
        {
            return CheckResult.Skip(Name, "a CRL is not usable (see the CRL checks)");
        }

        if (rootCrl.Revokes(ca))
        {
            return CheckResult.Fail(Name, ErrorCode.CertificateRevoked, $"\"{ca.SubjectCommonName}\" is revoked by the root CA CRL");
        }

        if (!pckCrl.IssuerName.Span.SequenceEqual(leaf.IssuerName.Span))
        {
            return CheckResult.Fail(Name, ErrorCode.CrlIssuerMismatch, $"the PCK CRL is issued by \"{pckCrl.IssuerCommonName}\" but the PCK certificate by \"{leaf.IssuerCommonName}\"");
        }

        if (pckCrl.Revokes(leaf))
        {
            return CheckResult.Fail(Name, ErrorCode.CertificateRevoked, $"the PCK certificate (serial {leaf.SerialHex}) is revoked by the PCK CRL");
        }

        return CheckResult.Pass(Name, $"neither the PCK CA nor the PCK certificate is revoked ({pckCrl.RevokedSerials.Count} serials listed)");
    }

    private static (CheckResult Check, PckExtensions? Pck, PckCaType? CaType) CheckPckExtension(ParsedCertificate? leaf, ParsedCertificate? ca)
    {
        const string Name = CheckNames.PckExtension;
        if (leaf is null || ca is null)
        {
            return (CheckResult.Skip(Name, "no trusted PCK chain"), null, null);
        }

        if (leaf.SgxExtension is not { } value)
        {
            return (CheckResult.Fail(Name, ErrorCode.PckExtensionMalformed, "the PCK certificate has no SGX extension"), null, null);
        }

        try
        {
            var pck = PckExtensions.Parse(value);
            var caType = ca.SubjectCommonName.Contains(PckPlatformCaPhrase, StringComparison.Ordinal) ? PckCaType.Platform : PckCaType.Processor;
            var expected = caType == PckCaType.Platform ? 7 : 5;
            if (pck.EntryCount != expected)
            {
                return (CheckResult.Fail(Name, ErrorCode.PckExtensionMalformed, $"a {caType}-CA PCK certificate must have {expected} SGX extension entries, not {pck.EntryCount}"), null, null);
            }

            return (CheckResult.Pass(Name, $"FMSPC {pck.FmspcHex}, PCE-ID {pck.PceIdHex}, PCESVN {pck.PceSvn}, SGX components {string.Join(',', pck.TcbComponents)} ({caType} CA)"), pck, caType);
        }
        catch (AttestationException ex)
        {
            return (CheckResult.Fail(Name, ex.Code, ex.Message), null, null);
        }
    }

    private static CheckResult CheckQeReportSignature(TdxQuote? quote, ParsedCertificate? leaf)
    {
        const string Name = CheckNames.QeReportSignature;
        if (quote is null || leaf is null)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "no trusted PCK certificate");
        }

        var s = quote.Signature;
        return Crypto.VerifyP1363(leaf.Key, s.QeReportBytes.Span, s.QeReportSignature.Span)
            ? CheckResult.Pass(Name, "the QE report is signed by the PCK key")
            : CheckResult.Fail(Name, ErrorCode.QeReportSignatureInvalid, "the QE report signature does not verify under the PCK certificate's key");
    }

    private static CheckResult CheckQeReportBinding(TdxQuote? quote)
    {
        const string Name = CheckNames.QeReportBinding;
        if (quote is null)
        {
            return CheckResult.Skip(Name, "no parsed quote");
        }

        var s = quote.Signature;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(s.AttestationPublicKey.Span);
        hash.AppendData(s.QeAuthData.Span);
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        var reportData = s.QeReport.ReportData.Span;
        if (!CryptographicOperations.FixedTimeEquals(reportData[..32], digest))
        {
            return CheckResult.Fail(Name, ErrorCode.QeReportDataMismatch, "QE report_data does not start with SHA-256(attestation key ‖ QE auth data): the attestation key is not the one the QE certified");
        }

        if (reportData[32..].ContainsAnyExcept((byte)0))
        {
            return CheckResult.Fail(Name, ErrorCode.QeReportDataMismatch, "QE report_data bytes 32..63 are not zero");
        }

        return CheckResult.Pass(Name, "QE report_data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes");
    }

    private static CheckResult CheckQeIdentityMatch(TdxQuote? quote, QeIdentity? identity)
    {
        const string Name = CheckNames.QeIdentityMatch;
        if (quote is null || identity is null)
        {
            return CheckResult.Skip(Name, quote is null ? "no parsed quote" : "no verified QE identity");
        }

        var qe = quote.Signature.QeReport;
        if (!qe.MrSigner.Span.SequenceEqual(identity.MrSigner))
        {
            return CheckResult.Fail(Name, ErrorCode.QeIdentityMismatch, $"QE MRSIGNER {Hex(qe.MrSigner)} is not the identity's {Convert.ToHexStringLower(identity.MrSigner)}");
        }

        if (qe.IsvProdId != identity.IsvProdId)
        {
            return CheckResult.Fail(Name, ErrorCode.QeIdentityMismatch, $"QE ISVPRODID {qe.IsvProdId} is not the identity's {identity.IsvProdId}");
        }

        if ((qe.MiscSelect & identity.MiscSelectMask) != identity.MiscSelect)
        {
            return CheckResult.Fail(Name, ErrorCode.QeIdentityMismatch, $"QE MISCSELECT 0x{qe.MiscSelect:x8} under mask 0x{identity.MiscSelectMask:x8} is not 0x{identity.MiscSelect:x8}");
        }

        var attributes = qe.Attributes.Span;
        for (var i = 0; i < 16; i++)
        {
            if ((attributes[i] & identity.AttributesMask[i]) != identity.Attributes[i])
            {
                return CheckResult.Fail(Name, ErrorCode.QeIdentityMismatch, $"QE attributes {Hex(qe.Attributes)} under mask {Convert.ToHexStringLower(identity.AttributesMask)} are not {Convert.ToHexStringLower(identity.Attributes)}");
            }
        }

        return CheckResult.Pass(Name, $"QE MRSIGNER, ISVPRODID {qe.IsvProdId}, MISCSELECT and attributes match \"{identity.Id}\"");
    }

    private static CheckResult CheckQuoteSignature(TdxQuote? quote)
    {
        const string Name = CheckNames.QuoteSignature;
        if (quote is null)
        {
            return CheckResult.Skip(Name, "no parsed quote");
        }

        ECDsa key;
        try
        {
            key = Crypto.ImportP256(quote.Signature.AttestationPublicKey.Span);
        }
        catch (CryptographicException)
        {
            return CheckResult.Fail(Name, ErrorCode.AttestationKeyInvalid, "the attestation key is not a point on P-256");
        }

        var signed = quote.Bytes.Length >= quote.SignedLength ? quote.Bytes[..quote.SignedLength] : quote.GetSignedRegion();
        return Crypto.VerifyP1363(key, signed.Span, quote.Signature.QuoteSignature.Span)
            ? CheckResult.Pass(Name, $"header and report body ({quote.SignedLength} bytes) are signed by the attestation key")
            : CheckResult.Fail(Name, ErrorCode.QuoteSignatureInvalid, "the quote signature does not verify under the attestation key");
    }

    private static CheckResult CheckTcbInfoPlatform(PckExtensions? pck, TcbInfo? info)
    {
        const string Name = CheckNames.TcbInfoPlatform;
        if (pck is null || info is null)
        {
            return CheckResult.Skip(Name, pck is null ? "no PCK extension" : "no verified TCB info");
        }

        if (!pck.Fmspc.Span.SequenceEqual(info.Fmspc))
        {
            return CheckResult.Fail(Name, ErrorCode.FmspcMismatch, $"the PCK certificate's FMSPC {pck.FmspcHex} is not the TCB info's {Convert.ToHexStringLower(info.Fmspc)}");
        }

        if (!pck.PceId.Span.SequenceEqual(info.PceId))
        {
            return CheckResult.Fail(Name, ErrorCode.PceIdMismatch, $"the PCK certificate's PCE-ID {pck.PceIdHex} is not the TCB info's {Convert.ToHexStringLower(info.PceId)}");
        }

        return CheckResult.Pass(Name, $"FMSPC {pck.FmspcHex} and PCE-ID {pck.PceIdHex} match the TCB info");
    }

    private CheckResult? CertificateWindow(string name, ParsedCertificate cert, DateTimeOffset now)
    {
        var who = ReferenceEquals(cert, _root) ? "the trusted root" : $"\"{cert.SubjectCommonName}\"";
        if (now < cert.NotBefore)
        {
            return CheckResult.Fail(name, ErrorCode.CertificateNotYetValid, $"{who} is valid only from {Time(cert.NotBefore)}, after {Time(now)}");
        }

        if (now > cert.NotAfter)
        {
            return CheckResult.Fail(name, ErrorCode.CertificateExpired, $"{who} expired at {Time(cert.NotAfter)}, before {Time(now)}");
        }

        return null;
    }

    /// <summary>A CRL is current while thisUpdate ≤ now &lt; nextUpdate (at nextUpdate a newer CRL is due).</summary>
    private static CheckResult? CrlWindow(string name, string what, ParsedCrl crl, DateTimeOffset now)
    {
        if (now < crl.ThisUpdate)
        {
            return CheckResult.Fail(name, ErrorCode.CrlNotYetValid, $"the {what} is issued {Time(crl.ThisUpdate)}, after {Time(now)}");
        }

        if (now >= crl.NextUpdate)
        {
            return CheckResult.Fail(name, ErrorCode.CrlExpired, $"the {what} expired at its nextUpdate {Time(crl.NextUpdate)} (time {Time(now)})");
        }

        return null;
    }

    private static string Describe(ReportBodyKind kind) => kind switch
    {
        ReportBodyKind.Td10 => "TD 1.0",
        ReportBodyKind.Td15 => "TD 1.5",
        _ => "SGX enclave",
    };

    internal static string Hex(ReadOnlyMemory<byte> bytes) => Convert.ToHexStringLower(bytes.Span);

    internal static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
