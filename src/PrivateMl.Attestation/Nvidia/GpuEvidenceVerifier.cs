using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Attestation.Trust;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>Strict by default; every relaxation is an explicit switch and shows in the result.</summary>
public sealed record GpuVerifierOptions
{
    /// <summary>Also trust the SIMULATED root (<see cref="NvidiaSimulatedRootCa"/>); results then say IsSimulated.</summary>
    public bool AllowSimulated { get; init; }

    /// <summary>Fail when no RIM is available for a GPU (default: measurement checks are Skipped without a source).</summary>
    public bool RequireRims { get; init; }

    /// <summary>Accept RIMs whose signer certificates are outside their validity window at "now" (authenticity still checked).</summary>
    public bool AllowExpiredRimSigners { get; init; }

    /// <summary>Accept bytes after the SPDM signature (one real capture has one). Counted in the result either way.</summary>
    public bool AllowTrailingBytes { get; init; } = true;

    /// <summary>Accept evidence encoded as base64 of hex text (nvtrust 1.x payloads).</summary>
    public bool AllowLegacyHexEvidence { get; init; } = true;

    /// <summary>When set, the payload must hold exactly this many GPUs.</summary>
    public int? ExpectedGpuCount { get; init; }

    /// <summary>Accept a certificate that OCSP reports revoked with reason certificateHold (NVIDIA's allow_hold_cert).</summary>
    public bool AllowOcspCertificateHold { get; init; }
}

/// <summary>One GPU's verification: every check in order, and what was decoded.</summary>
public sealed record GpuVerificationResult
{
    public required int Index { get; init; }
    public required string Arch { get; init; }
    public required IReadOnlyList<CheckResult> Checks { get; init; }
    public SpdmMeasurementReport? Report { get; init; }
    public GpuOpaqueData? Opaque { get; init; }
    public string? Ueid { get; init; }
    public string? HwModel { get; init; }
    public string? DriverVersion => Opaque?.DriverVersion;
    public string? VbiosVersion => Opaque?.VbiosVersion;
    public string? DriverRimId => Opaque?.DriverRimId(Arch);
    public string? VbiosRimId => Opaque?.VbiosRimId;
    public bool? FwidMatches { get; init; }
    public RimComparisonResult? Measurements { get; init; }

    /// <summary>True when the chain ends in the SIMULATED root.</summary>
    public bool IsSimulated { get; init; }

    public bool Accepted => Checks.All(c => c.Outcome != CheckOutcome.Failed) && Checks.Any(c => c.Name == GpuEvidenceVerifier.CheckNames.Signature && c.Outcome == CheckOutcome.Passed);

    public CheckResult? FirstFailure => Checks.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed);

    public ErrorCode? Error => FirstFailure?.Code;

    public CheckResult? Find(string name) => Checks.FirstOrDefault(c => c.Name == name);
}

/// <summary>The verification of a whole payload: payload-level checks plus one result per GPU.</summary>
public sealed record GpuPayloadVerificationResult
{
    public required IReadOnlyList<CheckResult> Checks { get; init; }
    public required IReadOnlyList<GpuVerificationResult> Gpus { get; init; }
    public required DateTimeOffset VerifiedAt { get; init; }
    public bool IsSimulated => Gpus.Any(g => g.IsSimulated);

    /// <summary>True when no payload check failed, there is at least one GPU, and every GPU is accepted.</summary>
    public bool Accepted => Checks.All(c => c.Outcome != CheckOutcome.Failed) && Gpus.Count > 0 && Gpus.All(g => g.Accepted);

    public CheckResult? FirstFailure => Checks.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed) ?? Gpus.Select(g => g.FirstFailure).FirstOrDefault(f => f is not null);

    public ErrorCode? Error => FirstFailure?.Code;
}

/// <summary>
/// Offline verification of NVIDIA GPU evidence: a pure function of the payload, the expected nonce, RIMs and time.
/// Per GPU, in order: evidence format, architecture, nonce, certificate chain to NVIDIA's device identity root
/// (embedded), ECDSA P-384 signature over the SPDM transcript, trailing bytes, opaque data, FWID (leaf certificate vs
/// report), OCSP (verified answers fetched online for certificates 1..n−2, else Skipped: not checked), driver and VBIOS RIMs
/// (NVSwitch: the switch BIOS RIM) (XML signature, chain to the CoRIM
/// root, signer validity, version), measurement comparison. Thread-safe.
/// </summary>
public sealed class GpuEvidenceVerifier
{
    public static class CheckNames
    {
        public const string PayloadFormat = "payload.format";
        public const string PayloadNonce = "payload.nonce";
        public const string PayloadGpuCount = "payload.gpu-count";
        public const string EvidenceFormat = "evidence.format";
        public const string Architecture = "evidence.arch";
        public const string Nonce = "evidence.nonce";
        public const string CertificateChain = "cert-chain";
        public const string Signature = "evidence.signature";
        public const string TrailingBytes = "evidence.trailing-bytes";
        public const string OpaqueData = "evidence.opaque-data";
        public const string Fwid = "evidence.fwid";
        public const string Ocsp = "cert-chain.ocsp";
        public const string DriverRim = "rim.driver";
        public const string VbiosRim = "rim.vbios";
        public const string SwitchRim = "rim.switch";
        public const string Measurements = "measurements";
    }

    private readonly X509Certificate2 _nvidiaRoot = X509CertificateLoader.LoadCertificate(NvidiaDeviceIdentityRootCa.Der);
    private readonly X509Certificate2 _simulatedRoot = X509CertificateLoader.LoadCertificate(NvidiaSimulatedRootCa.Der);
    private readonly X509Certificate2 _rimRoot = X509CertificateLoader.LoadCertificate(NvidiaCoRimSigningRootCa.Der);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _authenticRims = new(StringComparer.Ordinal);

    public GpuEvidenceVerifier(GpuVerifierOptions? options = null) => Options = options ?? new GpuVerifierOptions();

    public GpuVerifierOptions Options { get; }

    /// <summary>Parses and verifies a payload JSON string; malformed JSON becomes a failed <c>payload.format</c> check.</summary>
    public GpuPayloadVerificationResult Verify(string payloadJson, ReadOnlySpan<byte> expectedNonce, DateTimeOffset now, IRimSource? rims = null, GpuOcspResponses? ocsp = null)
    {
        GpuEvidencePayload payload;
        try
        {
            payload = GpuEvidencePayload.Parse(payloadJson);
        }
        catch (AttestationException e)
        {
            return new GpuPayloadVerificationResult { Checks = [CheckResult.Fail(CheckNames.PayloadFormat, e.Code, e.Message)], Gpus = [], VerifiedAt = now };
        }

        return Verify(payload, expectedNonce, now, rims, ocsp);
    }

    /// <summary>
    /// Verifies every GPU of a parsed payload against <paramref name="expectedNonce"/> (32 bytes). OCSP is checked
    /// only when <paramref name="ocsp"/> holds answers fetched online; otherwise it is reported "not checked".
    /// </summary>
    public GpuPayloadVerificationResult Verify(GpuEvidencePayload payload, ReadOnlySpan<byte> expectedNonce, DateTimeOffset now, IRimSource? rims = null, GpuOcspResponses? ocsp = null)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var checks = new List<CheckResult> { CheckResult.Pass(CheckNames.PayloadFormat, $"{payload.Items.Count} GPU evidence item(s), arch {payload.Arch}") };
        var expectedHex = Convert.ToHexStringLower(expectedNonce);
        checks.Add(expectedNonce.Length != SpdmLayout.NonceSize
            ? CheckResult.Fail(CheckNames.PayloadNonce, ErrorCode.GpuNonceMismatch, $"the expected nonce must be {SpdmLayout.NonceSize} bytes")
            : payload.Nonce == expectedHex
                ? CheckResult.Pass(CheckNames.PayloadNonce, "payload nonce equals the expected nonce")
                : CheckResult.Fail(CheckNames.PayloadNonce, ErrorCode.GpuNonceMismatch, $"payload nonce {payload.Nonce} is not the expected {expectedHex}"));
        if (Options.ExpectedGpuCount is { } n)
        {
            checks.Add(payload.Items.Count == n
                ? CheckResult.Pass(CheckNames.PayloadGpuCount, $"{n} GPUs as expected")
                : CheckResult.Fail(CheckNames.PayloadGpuCount, ErrorCode.GpuCountMismatch, $"{payload.Items.Count} GPUs, {n} expected"));
        }

        var gpus = new List<GpuVerificationResult>(payload.Items.Count);
        for (var i = 0; i < payload.Items.Count; i++)
        {
            gpus.Add(VerifyItem(payload.Items[i], i, expectedNonce, now, rims, ocsp));
        }

        return new GpuPayloadVerificationResult { Checks = checks, Gpus = gpus, VerifiedAt = now };
    }

    /// <summary>Verifies one GPU's evidence (report bytes + PEM chain) against the expected nonce.</summary>
    public GpuVerificationResult VerifyItem(GpuEvidenceItem item, int index, ReadOnlySpan<byte> expectedNonce, DateTimeOffset now, IRimSource? rims = null, GpuOcspResponses? ocsp = null)
    {
        ArgumentNullException.ThrowIfNull(item);
        var checks = new List<CheckResult>();
        var arch = item.Arch;

        // 1. evidence format
        SpdmMeasurementReport report;
        try
        {
            if (item.EvidenceEncoding == GpuEvidenceEncoding.Base64Hex && !Options.AllowLegacyHexEvidence)
            {
                throw new AttestationException(ErrorCode.GpuEvidenceLegacyEncoding, "evidence is base64 of hex text (nvtrust 1.x); legacy encoding is not allowed");
            }

            report = SpdmMeasurementReport.Parse(item.Evidence);
            checks.Add(CheckResult.Pass(CheckNames.EvidenceFormat, $"SPDM 1.1 MEASUREMENTS, {report.NumberOfBlocks} blocks, {report.Raw.Length} bytes" + (item.EvidenceEncoding == GpuEvidenceEncoding.Base64Hex ? " (legacy hex encoding)" : string.Empty)));
        }
        catch (AttestationException e)
        {
            checks.Add(CheckResult.Fail(CheckNames.EvidenceFormat, e.Code, e.Message));
            return new GpuVerificationResult { Index = index, Arch = arch, Checks = checks };
        }

        // 2. architecture
        checks.Add(GpuArchitecture.IsKnown(arch)
            ? CheckResult.Pass(CheckNames.Architecture, arch)
            : CheckResult.Fail(CheckNames.Architecture, ErrorCode.GpuArchitectureUnsupported, $"architecture '{arch}' is not HOPPER, BLACKWELL or LS10"));

        // 3. nonce
        var requestNonce = report.RequestNonce.Span;
        if (expectedNonce.Length != SpdmLayout.NonceSize || !requestNonce.SequenceEqual(expectedNonce))
        {
            checks.Add(CheckResult.Fail(CheckNames.Nonce, ErrorCode.GpuNonceMismatch, $"SPDM request nonce {Convert.ToHexStringLower(requestNonce)} is not the expected {Convert.ToHexStringLower(expectedNonce)}"));
        }
        else if (item.Nonce is not null && item.Nonce != Convert.ToHexStringLower(expectedNonce))
        {
            checks.Add(CheckResult.Fail(CheckNames.Nonce, ErrorCode.GpuNonceMismatch, $"item nonce {item.Nonce} differs from the evidence nonce"));
        }
        else
        {
            checks.Add(CheckResult.Pass(CheckNames.Nonce, "SPDM request nonce equals the expected nonce"));
        }

        // 4. certificate chain
        GpuCertificateChain? chain = null;
        var simulated = false;
        try
        {
            chain = GpuCertificateChain.Parse(item.CertificateChainPem);
            simulated = NvidiaSimulatedRootCa.Is(chain.Certificates[^1].RawDataMemory.Span);
            if (simulated && !Options.AllowSimulated)
            {
                checks.Add(CheckResult.Fail(CheckNames.CertificateChain, ErrorCode.SimulatedEvidenceNotTrusted, "the chain ends in the SIMULATED GPU root; AllowSimulated is off"));
            }
            else
            {
                var problem = chain.Verify(simulated ? _simulatedRoot : _nvidiaRoot, now);
                checks.Add(problem is { } p
                    ? CheckResult.Fail(CheckNames.CertificateChain, p.Code, "certificate chain " + p.Detail)
                    : CheckResult.Pass(CheckNames.CertificateChain, simulated
                        ? $"SIMULATED: {chain.Certificates.Count} certificates chain to the simulated root (not NVIDIA)"
                        : $"{chain.Certificates.Count} certificates chain to NVIDIA Device Identity CA; leaf '{chain.Leaf.GetNameInfo(X509NameType.SimpleName, false)}'"));
            }
        }
        catch (AttestationException e)
        {
            checks.Add(CheckResult.Fail(CheckNames.CertificateChain, e.Code, e.Message));
        }

        using var chainScope = chain;

        // 5. signature over request ‖ response-without-signature
        if (chain is null)
        {
            checks.Add(CheckResult.Skip(CheckNames.Signature, "no leaf certificate"));
        }
        else
        {
            ECDsa? key = null;
            bool valid;
            try
            {
                key = chain.Leaf.GetECDsaPublicKey();
                valid = key is not null && key.KeySize == 384 &&
                    key.VerifyData(report.SignedBytes.Span, report.Signature.Span, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            }
            catch (CryptographicException)
            {
                valid = false;
            }

            using var keyScope = key;
            checks.Add(valid
                ? CheckResult.Pass(CheckNames.Signature, $"ECDSA P-384/SHA-384 signature at offset {report.SignatureOffset} verifies with the leaf key")
                : CheckResult.Fail(CheckNames.Signature, ErrorCode.GpuReportSignatureInvalid, key is null || key.KeySize != 384 ? "the leaf certificate has no P-384 key" : "the report signature does not verify with the leaf key"));
        }

        // 6. trailing bytes
        checks.Add(report.TrailingBytes == 0
            ? CheckResult.Pass(CheckNames.TrailingBytes, "none")
            : Options.AllowTrailingBytes
                ? CheckResult.Pass(CheckNames.TrailingBytes, $"{report.TrailingBytes} byte(s) after the signature, outside the signed data, ignored")
                : CheckResult.Fail(CheckNames.TrailingBytes, ErrorCode.SpdmTrailingData, $"{report.TrailingBytes} byte(s) after the signature"));

        // 7. opaque data
        GpuOpaqueData? opaque = null;
        try
        {
            opaque = GpuOpaqueData.Parse(report.OpaqueData);
            checks.Add(CheckResult.Pass(CheckNames.OpaqueData, $"driver {opaque.DriverVersion ?? "?"}, VBIOS {opaque.VbiosVersion ?? "?"}, project {opaque.Project ?? "?"}/{opaque.ProjectSku ?? "?"}, chip SKU {opaque.ChipSku ?? "?"}"));
        }
        catch (AttestationException e)
        {
            checks.Add(CheckResult.Fail(CheckNames.OpaqueData, e.Code, e.Message));
        }

        // 8. FWID
        bool? fwidMatches = null;
        if (chain is null || opaque is null)
        {
            checks.Add(CheckResult.Skip(CheckNames.Fwid, "needs the chain and the opaque data"));
        }
        else if (opaque.Fwid is not { } reportFwid)
        {
            checks.Add(CheckResult.Skip(CheckNames.Fwid, "the report carries no FWID (firmware before 2024, or NVSwitch); not compared, as NVIDIA's verifiers do"));
        }
        else if (chain.LeafFwid() is not { } certFwid)
        {
            fwidMatches = false;
            checks.Add(CheckResult.Fail(CheckNames.Fwid, ErrorCode.GpuFwidMissing, "the report has an FWID but the leaf certificate has no FWID extension"));
        }
        else
        {
            fwidMatches = CryptographicOperations.FixedTimeEquals(certFwid.Digest, reportFwid.Span);
            checks.Add(fwidMatches.Value
                ? CheckResult.Pass(CheckNames.Fwid, $"report FWID equals the leaf certificate's ({certFwid.Oid})")
                : CheckResult.Fail(CheckNames.Fwid, ErrorCode.GpuFwidMismatch, "report FWID differs from the leaf certificate's: report and chain belong to different firmware or devices"));
        }

        // 9. OCSP
        var chainTrusted = checks.Any(c => c.Name == CheckNames.CertificateChain && c.Outcome == CheckOutcome.Passed);
        checks.Add(ocsp is null
            ? CheckResult.Skip(CheckNames.Ocsp, "not checked (offline verification; revocation status unknown)")
            : chain is null || !chainTrusted
                ? CheckResult.Skip(CheckNames.Ocsp, "not checked: the certificate chain is not trusted")
                : GpuOcsp.CheckChain(chain.Certificates, ocsp, simulated ? _simulatedRoot : _nvidiaRoot, now, Options.AllowOcspCertificateHold));

        // 10-12. RIMs and measurements
        RimComparisonResult? comparison = null;
        if (opaque is not null && arch != GpuArchitecture.Ls10)
        {
            var driver = LoadRim(CheckNames.DriverRim, opaque.DriverRimId(arch), opaque.DriverVersion, rims, now, checks);
            var vbios = LoadRim(CheckNames.VbiosRim, opaque.VbiosRimId, opaque.VbiosVersion, rims, now, checks);
            using (driver)
            using (vbios)
            {
                if (driver is null && vbios is null)
                {
                    checks.Add(Options.RequireRims
                        ? CheckResult.Fail(CheckNames.Measurements, ErrorCode.RimNotFound, "no usable RIM; measurements not compared")
                        : CheckResult.Skip(CheckNames.Measurements, "no RIM supplied; measurements not compared"));
                }
                else
                {
                    comparison = RimComparison.Compare(report, driver, vbios, opaque.Nvdec0Status);
                    checks.Add(MeasurementCheck(comparison, driver is not null && vbios is not null));
                }
            }
        }
        else if (opaque is not null)
        {
            // NVSwitch: one RIM, the switch BIOS's, covers every active index.
            using var switchRim = LoadRim(CheckNames.SwitchRim, opaque.SwitchBiosRimId, opaque.VbiosVersion, rims, now, checks);
            if (switchRim is null)
            {
                checks.Add(Options.RequireRims
                    ? CheckResult.Fail(CheckNames.Measurements, ErrorCode.RimNotFound, "no usable switch BIOS RIM; measurements not compared")
                    : CheckResult.Skip(CheckNames.Measurements, "no switch BIOS RIM supplied; measurements not compared"));
            }
            else
            {
                comparison = RimComparison.Compare(report, driver: null, vbios: switchRim, nvdec0Status: null);
                checks.Add(MeasurementCheck(comparison, both: true));
            }
        }
        else
        {
            checks.Add(CheckResult.Skip(CheckNames.Measurements, "needs the opaque data"));
        }

        return new GpuVerificationResult
        {
            Index = index,
            Arch = arch,
            Checks = checks,
            Report = report,
            Opaque = opaque,
            Ueid = chain?.Ueid,
            HwModel = chain?.HwModel,
            FwidMatches = fwidMatches,
            Measurements = comparison,
            IsSimulated = simulated,
        };
    }

    private CheckResult MeasurementCheck(RimComparisonResult c, bool both)
    {
        if (c.Conflicts.Count > 0)
        {
            return CheckResult.Fail(CheckNames.Measurements, ErrorCode.RimIndexConflict, $"indices active in both RIMs: {string.Join(", ", c.Conflicts)}");
        }

        if (c.Mismatches.Count > 0)
        {
            return CheckResult.Fail(CheckNames.Measurements, ErrorCode.RimMeasurementMismatch,
                $"{c.Mismatches.Count} mismatching index(es): {string.Join(", ", c.Mismatches.Select(m => $"{m.Kind.ToString().ToLowerInvariant()} {m.Index}"))}; {c.MatchedCount} matched");
        }

        if (!both && Options.RequireRims)
        {
            return CheckResult.Fail(CheckNames.Measurements, ErrorCode.RimNotFound, $"{c.MatchedCount} matched, but only one of the driver and VBIOS RIMs was available");
        }

        return CheckResult.Pass(CheckNames.Measurements, $"{c.MatchedCount} measurements match" + (c.Skipped.Count > 0 ? $", skipped {string.Join(", ", c.Skipped)} (NVDEC0 disabled)" : string.Empty) + (both ? string.Empty : " (one RIM only)"));
    }

    private NvidiaRim? LoadRim(string name, string? rimId, string? version, IRimSource? source, DateTimeOffset now, List<CheckResult> checks)
    {
        if (rimId is null)
        {
            checks.Add(CheckResult.Skip(name, "the report lacks the fields that name this RIM"));
            return null;
        }

        var bytes = source?.Find(rimId);
        if (bytes is null)
        {
            checks.Add(source is null
                ? CheckResult.Skip(name, $"{rimId}: no RIM source given")
                : Options.RequireRims
                    ? CheckResult.Fail(name, ErrorCode.RimNotFound, $"{rimId}: not found")
                    : CheckResult.Skip(name, $"{rimId}: not found"));
            return null;
        }

        var (rim, failure) = CheckRim(bytes, version, now);
        if (failure is not null)
        {
            checks.Add(CheckResult.Fail(name, failure.Value.Code, $"{rimId}: {failure.Value.Detail}"));
            rim?.Dispose();
            return null;
        }

        checks.Add(CheckResult.Pass(name, $"{rimId}: XML signature valid, signer '{rim!.SignerCertificates[0].GetNameInfo(X509NameType.SimpleName, false)}' chains to {(NvidiaSimulatedRootCa.Is(rim.SignerCertificates[^1].RawDataMemory.Span) ? "the SIMULATED root" : "NVIDIA CoRIM signing Root CA")}, version {rim.ColloquialVersion}"));
        return rim;
    }

    /// <summary>
    /// Authenticates one RIM: parse, XML signature, chain to the CoRIM root, signer validity at <paramref name="now"/>
    /// (unless <see cref="GpuVerifierOptions.AllowExpiredRimSigners"/>), and colloquialVersion equal to
    /// <paramref name="expectedVersion"/> (case-insensitive) when given.
    /// </summary>
    public (NvidiaRim? Rim, (ErrorCode Code, string Detail)? Failure) CheckRim(byte[] rimBytes, string? expectedVersion, DateTimeOffset now)
    {
        NvidiaRim rim;
        try
        {
            rim = NvidiaRim.Parse(rimBytes);
        }
        catch (AttestationException e)
        {
            return (null, (e.Code, e.Message));
        }

        var simulatedRim = rim.SignerCertificates.Count > 0 && NvidiaSimulatedRootCa.Is(rim.SignerCertificates[^1].RawDataMemory.Span);
        if (simulatedRim && !Options.AllowSimulated)
        {
            return (rim, (ErrorCode.SimulatedEvidenceNotTrusted, "the RIM is signed under the SIMULATED root; AllowSimulated is off"));
        }

        // Signature and chain depend only on the bytes: remember documents that passed both (RIMs are reused per GPU).
        var key = Convert.ToHexString(SHA256.HashData(rimBytes)) + (simulatedRim ? "/sim" : "/nv");
        if (!_authenticRims.ContainsKey(key))
        {
            if (rim.VerifySignature() is { } sig)
            {
                return (rim, (ErrorCode.RimSignatureInvalid, sig));
            }

            if (rim.VerifyChain(simulatedRim ? _simulatedRoot : _rimRoot) is { } chain)
            {
                return (rim, (ErrorCode.RimChainUntrusted, "signer chain " + chain));
            }

            if (_authenticRims.Count >= 1024)
            {
                _authenticRims.Clear();
            }

            _authenticRims.TryAdd(key, true);
        }

        if (!Options.AllowExpiredRimSigners && rim.ValidityProblem(now) is { } validity)
        {
            return (rim, (ErrorCode.RimCertificateExpired, validity));
        }

        if (expectedVersion is not null && !string.Equals(rim.ColloquialVersion, expectedVersion, StringComparison.OrdinalIgnoreCase))
        {
            return (rim, (ErrorCode.RimVersionMismatch, $"RIM version {rim.ColloquialVersion} is not the evidence's {expectedVersion}"));
        }

        return (rim, null);
    }
}
