using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Agent.Certificates;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral;
using PrivateMl.Kms.Policy;

namespace PrivateMl.Kms.RaTls;

/// <summary>Why the KMS refused a request: a stable code (the contract) and a sentence for a person.</summary>
public sealed record KmsRefusal(ErrorCode Code, string Reason)
{
    public override string ToString() => $"{Code}: {Reason}";
}

/// <summary>
/// A TD whose RA-TLS certificate verified: its quote, the event log that replays to the quote's RTMRs, and the app
/// identity read from RTMR3 the way dstack reads it.
/// </summary>
public sealed class AttestedCaller
{
    public required TdxQuote Quote { get; init; }

    public required TdReportBody TdReport { get; init; }

    public required QuoteVerificationResult Verification { get; init; }

    public required IReadOnlyList<TdxEvent> EventLog { get; init; }

    public required string EventLogJson { get; init; }

    public required DstackAppIdentity Identity { get; init; }

    /// <summary>20-byte app id from the <c>app-id</c> event.</summary>
    public required byte[] AppId { get; init; }

    /// <summary>20-byte instance id, or empty (apps with <c>no_instance_id</c>).</summary>
    public required byte[] InstanceId { get; init; }

    /// <summary>32-byte compose hash.</summary>
    public required byte[] ComposeHash { get; init; }

    /// <summary>SHA-256 of the QE user data in the quote header (dstack's <c>device_id</c>).</summary>
    public byte[] DeviceId => SHA256.HashData(Quote.Bytes.Span.Slice(28, 20));

    public bool IsSimulated => Verification.IsSimulated;

    public override string ToString() => $"AttestedCaller(app_id={Convert.ToHexStringLower(AppId)})";
}

/// <summary>The outcome of <see cref="RaTlsVerifier.VerifyAsync"/>: every check that ran, and either a caller or a refusal.</summary>
public sealed record RaTlsVerification(AttestedCaller? Caller, KmsRefusal? Refusal, IReadOnlyList<CheckResult> Checks)
{
    public bool Accepted => Caller is not null && Refusal is null;
}

/// <summary>
/// Verifies an RA-TLS client certificate (dstack.md §9.3, §9.4): present and within its validity; its quote (.1.1)
/// verifies with DCAP under the configured root and collateral, with an accepted TCB status and no debug; the quote's
/// report_data is SHA-512("ratls-cert:" ‖ the certificate's SPKI); the event log (.1.2) replays to the quote's RTMRs;
/// RTMR3 names an app; and the quote is fresh (certificate notBefore, and first sighting by this KMS, within the
/// window). The first failure becomes a <see cref="KmsRefusal"/> with a 9xx code. Thread-safe.
/// </summary>
public sealed class RaTlsVerifier
{
    private readonly DcapVerifier _dcap;
    private readonly ICollateralSource _collateral;
    private readonly QuoteReplayCache _seen;
    private readonly TimeProvider _time;
    private readonly bool _allowSimulated;

    public RaTlsVerifier(DcapVerifier dcap, ICollateralSource collateral, QuoteReplayCache seen, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(dcap);
        ArgumentNullException.ThrowIfNull(collateral);
        ArgumentNullException.ThrowIfNull(seen);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _dcap = dcap;
        _collateral = collateral;
        _seen = seen;
        _time = timeProvider;
        _allowSimulated = dcap.Options.AllowSimulated;
    }

    /// <summary>Tolerated clock difference when checking certificate validity.</summary>
    public static TimeSpan ClockSkew { get; } = TimeSpan.FromMinutes(2);

    public async Task<RaTlsVerification> VerifyAsync(X509Certificate2? certificate, KmsPolicy policy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var checks = new List<CheckResult>();
        RaTlsVerification Refuse(string name, ErrorCode code, string reason)
        {
            checks.Add(CheckResult.Fail(name, code, reason));
            return new RaTlsVerification(null, new KmsRefusal(code, reason), checks);
        }

        var now = _time.GetUtcNow();
        if (certificate is null)
        {
            return Refuse("ratls.client-certificate", ErrorCode.KmsClientCertificateRequired, "key requests need a TLS client certificate carrying a TDX quote (RA-TLS); none was presented");
        }

        var notBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        if (now + ClockSkew < notBefore || now - ClockSkew > notAfter)
        {
            return Refuse("ratls.certificate-validity", ErrorCode.KmsClientCertificateExpired, $"the client certificate is valid from {notBefore:O} to {notAfter:O}, not at {now:O}");
        }

        checks.Add(CheckResult.Pass("ratls.certificate-validity", $"valid from {notBefore:O} to {notAfter:O}"));
        var quoteBytes = CertificateFactory.ReadOctetStringExtension(certificate, RaTlsOids.Quote);
        var eventLogBytes = CertificateFactory.ReadOctetStringExtension(certificate, RaTlsOids.EventLog);
        if (quoteBytes is null || eventLogBytes is null)
        {
            return Refuse("ratls.extensions", ErrorCode.KmsRaTlsExtensionMissing, $"the client certificate lacks the RA-TLS {(quoteBytes is null ? "quote (1.3.6.1.4.1.62397.1.1)" : "event log (1.3.6.1.4.1.62397.1.2)")} extension");
        }

        return await VerifyEvidenceAsync(quoteBytes, eventLogBytes, certificate.PublicKey.ExportSubjectPublicKeyInfo(), notBefore, policy, checks, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Verifies a quote and event log presented for the key <paramref name="spki"/> outside a certificate (dstack's
    /// <c>SignCert</c> CSR): the same checks as <see cref="VerifyAsync"/> after the certificate's own; freshness uses
    /// <paramref name="issued"/> when given and this KMS's first sighting of the quote.
    /// </summary>
    public Task<RaTlsVerification> VerifyEvidenceAsync(byte[] quoteBytes, byte[] eventLogBytes, byte[] spki, DateTimeOffset? issued, KmsPolicy policy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(policy);
        return VerifyEvidenceAsync(quoteBytes, eventLogBytes, spki, issued, policy, [], cancellationToken);
    }

    private async Task<RaTlsVerification> VerifyEvidenceAsync(
        byte[] quoteBytes, byte[] eventLogBytes, byte[] spki, DateTimeOffset? issued, KmsPolicy policy, List<CheckResult> checks, CancellationToken cancellationToken)
    {
        RaTlsVerification Refuse(string name, ErrorCode code, string reason)
        {
            checks.Add(CheckResult.Fail(name, code, reason));
            return new RaTlsVerification(null, new KmsRefusal(code, reason), checks);
        }

        var now = _time.GetUtcNow();
        if (!TdxQuote.TryParse(quoteBytes, out var quote, out var parseError) || quote.TdReport is not { } td)
        {
            return Refuse("ratls.quote", ErrorCode.KmsQuoteUntrusted, $"the certificate's quote is not a TDX quote: {parseError?.Message ?? "no TD report"}");
        }

        Attestation.Tdx.Collateral.DcapCollateral collateral;
        try
        {
            collateral = await _collateral.GetCollateralAsync(QuotePlatform.CollateralRequestFor(quote), cancellationToken).ConfigureAwait(false);
        }
        catch (AttestationException e)
        {
            var code = e.Code is ErrorCode.CollateralUnavailable or ErrorCode.CollateralMalformed ? ErrorCode.KmsCollateralUnavailable : ErrorCode.KmsQuoteUntrusted;
            return Refuse("ratls.collateral", code, $"no collateral for the quote ({e.Code}): {e.Message}");
        }

        var verification = _dcap.Verify(quoteBytes, collateral, now);
        var quotePolicy = new AttestationPolicy
        {
            AcceptedTcbStatuses = policy.AcceptedTcbStatuses,
            AllowDebug = policy.AllowDebug,
            AllowSimulated = _allowSimulated,
        };
        var evaluated = PolicyEvaluator.Evaluate(quotePolicy, verification);
        foreach (var (name, code) in PolicyRefusals)
        {
            if (evaluated.Checks.FirstOrDefault(c => c.Name == name) is { Outcome: CheckOutcome.Failed } failed)
            {
                checks.AddRange(evaluated.Checks);
                return Refuse("ratls.quote", code, $"{failed.Detail} ({failed.Code})");
            }
        }

        if (!evaluated.Accepted)
        {
            var failed = evaluated.Failures.First();
            return Refuse("ratls.quote", ErrorCode.KmsQuoteUntrusted, $"{failed.Detail} ({failed.Code})");
        }

        checks.Add(CheckResult.Pass("ratls.quote", $"DCAP verified{(verification.IsSimulated ? " under the SIMULATED root" : "")}, TCB {verification.Status}"));
        var expected = CertificateFactory.RaTlsReportData(spki);
        if (!CryptographicOperations.FixedTimeEquals(expected, quote.ReportData.Span))
        {
            return Refuse("ratls.report-data", ErrorCode.KmsQuoteNotBoundToCertificate, "the quote's report_data is not SHA-512(\"ratls-cert:\" ‖ SPKI) of this certificate's key: the quote was made for another key");
        }

        checks.Add(CheckResult.Pass("ratls.report-data", "report_data binds the certificate key"));
        IReadOnlyList<TdxEvent> events;
        string eventLogJson;
        try
        {
            eventLogJson = System.Text.Encoding.UTF8.GetString(eventLogBytes);
            events = TdxEventLog.Parse(eventLogBytes);
        }
        catch (AttestationException e)
        {
            return Refuse("ratls.event-log", ErrorCode.KmsEventLogInvalid, $"the certificate's event log is malformed ({e.Code}): {e.Message}");
        }

        var replay = RtmrReplay.CheckAgainstQuote(events, [td.Rtmr0, td.Rtmr1, td.Rtmr2, td.Rtmr3]);
        if (replay.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed) is { } mismatch)
        {
            checks.AddRange(replay);
            return Refuse("ratls.event-log", ErrorCode.KmsEventLogInvalid, $"the event log does not replay to the quote ({mismatch.Code}): {mismatch.Detail}");
        }

        checks.Add(CheckResult.Pass("ratls.event-log", "the event log replays to RTMR0–3"));
        var identity = DstackAppIdentity.FromEventLog(events);
        if (identity.AppId is not { Length: 20 } appId || identity.ComposeHash is not { Length: 32 } composeHash
            || identity.InstanceId is not { Length: 0 or 20 } instanceId)
        {
            return Refuse("ratls.app-identity", ErrorCode.KmsAppIdentityMissing, "RTMR3 does not name an app: app-id (20 B), compose-hash (32 B) and instance-id events are required");
        }

        checks.Add(CheckResult.Pass("ratls.app-identity", $"app_id {Convert.ToHexStringLower(appId.Span)}"));
        if (policy.FreshnessWindow is { } window)
        {
            if (issued is { } notBefore && notBefore < now - window)
            {
                return Refuse("ratls.freshness", ErrorCode.KmsQuoteStale, $"the certificate and its quote date from {notBefore:O}, older than the {window.TotalSeconds:0} s freshness window");
            }

            var firstSeen = _seen.FirstSeen(quoteBytes, now, window);
            if (firstSeen < now - window)
            {
                return Refuse("ratls.freshness", ErrorCode.KmsQuoteStale, $"this quote was first presented at {firstSeen:O}, older than the {window.TotalSeconds:0} s freshness window (a replay)");
            }

            checks.Add(CheckResult.Pass("ratls.freshness", $"within {window.TotalSeconds:0} s"));
        }
        else
        {
            checks.Add(CheckResult.Skip("ratls.freshness", "the policy sets no freshness window"));
        }

        return new RaTlsVerification(
            new AttestedCaller
            {
                Quote = quote,
                TdReport = td,
                Verification = verification,
                EventLog = events,
                EventLogJson = eventLogJson,
                Identity = identity,
                AppId = appId.ToArray(),
                InstanceId = instanceId.ToArray(),
                ComposeHash = composeHash.ToArray(),
            },
            null,
            checks);
    }

    /// <summary>Policy checks in the order their failure decides the refusal.</summary>
    private static readonly (string Name, ErrorCode Code)[] PolicyRefusals =
    [
        ("policy.authenticity", ErrorCode.KmsQuoteUntrusted),
        ("policy.simulated", ErrorCode.KmsQuoteUntrusted),
        ("policy.td.debug", ErrorCode.KmsDebugTdForbidden),
        ("policy.tcb.status", ErrorCode.KmsTcbNotAccepted),
        ("policy.tcb.advisories", ErrorCode.KmsTcbNotAccepted),
    ];
}

/// <summary>
/// When this KMS first saw each quote (by SHA-256), so a quote presented again after the freshness window is a
/// replay even inside a re-dated certificate. Bounded: entries are kept for <see cref="Retention"/> multiples of the
/// window and at most <see cref="Capacity"/> quotes (oldest dropped first).
/// </summary>
public sealed class QuoteReplayCache
{
    private readonly Dictionary<string, DateTimeOffset> _firstSeen = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, DateTimeOffset Seen)> _order = new();
    private readonly Lock _gate = new();

    public int Capacity { get; init; } = 100_000;

    public int Retention { get; init; } = 144;

    /// <summary>Records <paramref name="quote"/> at <paramref name="now"/> unless seen before; returns its first sighting.</summary>
    public DateTimeOffset FirstSeen(ReadOnlySpan<byte> quote, DateTimeOffset now, TimeSpan window)
    {
        var key = Convert.ToHexString(SHA256.HashData(quote));
        lock (_gate)
        {
            while (_order.TryPeek(out var oldest) && (oldest.Seen < now - (window * Retention) || _order.Count > Capacity))
            {
                _order.Dequeue();
                _firstSeen.Remove(oldest.Key);
            }

            if (_firstSeen.TryGetValue(key, out var seen))
            {
                return seen;
            }

            _firstSeen[key] = now;
            _order.Enqueue((key, now));
            return now;
        }
    }
}
