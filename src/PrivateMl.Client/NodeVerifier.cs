using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Trust;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral;

namespace PrivateMl.Client;

/// <summary>
/// Verifies a confidential LLM node on the caller's machine. In order:
/// <list type="number">
/// <item>a fresh 32-byte nonce, then <c>GET /v1/attestation/report?nonce=…</c> (<c>report.fetch</c>, <c>report.format</c>);</item>
/// <item>collateral for the quote's platform from the configured source (<c>collateral</c>);</item>
/// <item>DCAP verification of the quote (the <see cref="DcapVerifier.CheckNames"/>), then the policy (<c>policy.*</c>);</item>
/// <item>report_data binds the signing key and this run's nonce (<c>report-data.signing-key</c>, <c>report-data.nonce</c>);</item>
/// <item>the event log replays to RTMR0–3 (<c>event-log.*</c>);</item>
/// <item>the app identity from the event log: compose hash (against the expected compose file when given), the compose
/// document the node published, MR_CONFIG_ID, app id, instance id, key provider (<c>app.*</c>);</item>
/// <item>GPU evidence, verified locally against the same nonce (<c>gpu.*</c>), or "not checked" when there is none.</item>
/// </list>
/// Every check runs that can; none throws for hostile input. Thread-safe.
/// </summary>
public sealed class NodeVerifier
{
    public static class CheckNames
    {
        public const string ReportFetch = "report.fetch";
        public const string ReportFormat = "report.format";
        public const string Collateral = "collateral";
        public const string SigningKeyBinding = "report-data.signing-key";
        public const string NonceBinding = "report-data.nonce";
        public const string KeysetBinding = "report-data.keyset";
        public const string ComposeHash = "app.compose-hash";
        public const string PublishedCompose = "app.published-compose";
        public const string MrConfigId = "app.mr-config-id";
        public const string AppId = "app.app-id";
        public const string InstanceId = "app.instance-id";
        public const string KeyProvider = "app.key-provider";
        public const string Gpu = "gpu";
        public const string EventLogRtmr3 = "event-log.rtmr3";
    }

    private readonly HttpClient _http;

    public NodeVerifier(HttpClient http, NodeVerifierOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        _http = http;
        Options = options ?? new NodeVerifierOptions();
    }

    public NodeVerifierOptions Options { get; }

    /// <summary>Fetches a fresh report from <paramref name="baseAddress"/> and verifies it.</summary>
    public async Task<NodeVerificationResult> VerifyAsync(Uri baseAddress, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(baseAddress);
        var nonce = Options.NonceSource?.Invoke() ?? RandomNumberGenerator.GetBytes(32);
        if (nonce.Length != 32)
        {
            throw new InvalidOperationException("the nonce source must return 32 bytes");
        }

        var url = Options.ReportFormat == NodeReportFormat.Aci
            ? new Uri(baseAddress, $"v1/attestation/report?format=aci&nonce={Convert.ToHexStringLower(nonce)}")
            : new Uri(baseAddress, $"v1/attestation/report?nonce={Convert.ToHexStringLower(nonce)}&signing_algo={Uri.EscapeDataString(Options.SigningAlgo)}");
        byte[] body;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (!string.IsNullOrEmpty(Options.ApiKey))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Options.ApiKey);
            }

            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return FetchFailed(baseAddress, nonce, $"GET {url.AbsolutePath} answered HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            }

            if (response.Content.Headers.ContentLength > NodeReport.MaxReportBytes)
            {
                return FetchFailed(baseAddress, nonce, $"the report would be {response.Content.Headers.ContentLength} bytes, more than {NodeReport.MaxReportBytes}");
            }

            body = await ReadBoundedAsync(response.Content, NodeReport.MaxReportBytes, cancellationToken).ConfigureAwait(false)
                ?? [];
            if (body.Length == 0)
            {
                return FetchFailed(baseAddress, nonce, $"the report is empty or larger than {NodeReport.MaxReportBytes} bytes");
            }
        }
        catch (HttpRequestException e)
        {
            return FetchFailed(baseAddress, nonce, $"could not reach {baseAddress}: {e.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return FetchFailed(baseAddress, nonce, $"{baseAddress} did not answer in time");
        }

        var fetched = CheckResult.Pass(CheckNames.ReportFetch, $"GET {url.AbsolutePath} with a fresh nonce returned {body.Length} bytes");
        var result = await VerifyReportAsync(body, nonce, collateral: null, at: null, cancellationToken).ConfigureAwait(false);
        return result with { BaseAddress = baseAddress.ToString(), Checks = [fetched, .. result.Checks] };
    }

    /// <summary>
    /// Re-verifies an evidence bundle offline: every check runs again from the bundled report and collateral, as of the
    /// bundle's time, against the nonce recorded in it. The configured collateral source is not asked.
    /// </summary>
    public async Task<NodeVerificationResult> VerifyBundleAsync(EvidenceBundle bundle, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        var offline = new NodeVerifier(_http, Options with { Collateral = null });
        var result = await offline.VerifyReportAsync(bundle.ReportJson, bundle.Nonce, bundle.Collateral, bundle.VerifiedAt, cancellationToken).ConfigureAwait(false);
        return result with { BaseAddress = bundle.BaseAddress };
    }

    /// <summary>
    /// Verifies report bytes obtained for <paramref name="nonce"/>. Collateral comes from <paramref name="collateral"/>
    /// when given (an evidence bundle), else from <see cref="NodeVerifierOptions.Collateral"/>. <paramref name="at"/>
    /// overrides the clock (re-verifying a bundle as of the time it was taken).
    /// </summary>
    public async Task<NodeVerificationResult> VerifyReportAsync(
        ReadOnlyMemory<byte> reportJson,
        ReadOnlyMemory<byte> nonce,
        DcapCollateral? collateral = null,
        DateTimeOffset? at = null,
        CancellationToken cancellationToken = default)
    {
        var now = at ?? Options.Time.GetUtcNow();
        NodeReport report;
        TdxQuote quote;
        try
        {
            report = NodeReport.Parse(reportJson.Span);
        }
        catch (AttestationException e)
        {
            return Untrusted(now, nonce, reportJson, CheckResult.Fail(CheckNames.ReportFormat, e.Code, e.Message));
        }

        var checks = new List<CheckResult> { CheckResult.Pass(CheckNames.ReportFormat, $"a report for {report.SigningAlgo} signing address {report.SigningAddress}") };
        if (!TdxQuote.TryParse(report.Quote, out var parsed, out var parseError))
        {
            checks.Add(CheckResult.Fail(DcapVerifier.CheckNames.QuoteFormat, parseError.Code, parseError.Message));
            return Untrusted(now, nonce, reportJson, [.. checks]) with { Report = report };
        }

        quote = parsed;
        string? collateralError = null;
        ErrorCode collateralCode = ErrorCode.CollateralUnavailable;
        if (collateral is null)
        {
            if (Options.Collateral is null)
            {
                collateralError = "no collateral source is configured (give a cache, an offline bundle or a PCCS)";
            }
            else
            {
                try
                {
                    var request = QuotePlatform.CollateralRequestFor(quote);
                    collateral = await Options.Collateral.GetCollateralAsync(request, cancellationToken).ConfigureAwait(false);
                    checks.Add(CheckResult.Pass(CheckNames.Collateral, $"collateral for {request}"));
                }
                catch (AttestationException e)
                {
                    collateralError = e.Message;
                    collateralCode = e.Code;
                }
            }
        }
        else
        {
            checks.Add(CheckResult.Pass(CheckNames.Collateral, "collateral supplied with the evidence"));
        }

        if (collateral is null)
        {
            checks.Add(CheckResult.Fail(CheckNames.Collateral, collateralCode, collateralError ?? "no collateral"));
        }

        return Evaluate(report, quote, reportJson, nonce, collateral, now, checks);
    }

    private NodeVerificationResult Evaluate(
        NodeReport report,
        TdxQuote quote,
        ReadOnlyMemory<byte> reportJson,
        ReadOnlyMemory<byte> nonce,
        DcapCollateral? collateral,
        DateTimeOffset now,
        List<CheckResult> checks)
    {
        // DCAP and policy.
        QuoteVerificationResult? dcap = null;
        var simulated = false;
        if (collateral is not null)
        {
            var (verifierOptions, isSimulatedRoot) = VerifierOptionsFor(quote);
            simulated = isSimulatedRoot;
            DcapVerifier? verifier = null;
            try
            {
                verifier = new DcapVerifier(verifierOptions);
            }
            catch (ArgumentException e)
            {
                checks.Add(CheckResult.Fail(DcapVerifier.CheckNames.TrustAnchor, ErrorCode.PckChainUntrusted, "the root certificate to verify under is unusable: " + e.Message));
            }

            if (verifier is not null)
            {
                dcap = verifier.Verify(quote, collateral, now);
                checks.AddRange(dcap.Checks);
                var policy = Options.Policy with { AllowSimulated = Options.Policy.AllowSimulated || Options.AllowSimulated };
                checks.AddRange(PolicyEvaluator.Evaluate(policy, dcap).Checks);
            }
        }

        // Bindings.
        var reportData = quote.ReportData.Span;
        PrivateMl.E2ee.Aci.WorkloadKeyset? keyset = null;
        if (Options.ReportFormat == NodeReportFormat.Aci)
        {
            var (binding, bound) = AciBinding.Check(report, reportJson.Span, reportData, nonce.Span, now);
            checks.Add(binding);
            keyset = bound;
        }
        else
        {
            checks.Add(SigningKeyBinding(report, reportData));
            checks.Add(NonceBinding(report, reportData, nonce.Span));
        }

        // Event log and app identity.
        DstackAppIdentity? identity = null;
        if (report.EventLogJson is null)
        {
            checks.Add(CheckResult.Fail("event-log.format", ErrorCode.EventLogMalformed, "the report carries no event log, so RTMR3 and the app identity cannot be checked"));
        }
        else
        {
            IReadOnlyList<TdxEvent>? events = null;
            try
            {
                events = TdxEventLog.Parse(report.EventLogJson);
            }
            catch (AttestationException e)
            {
                checks.Add(CheckResult.Fail("event-log.format", e.Code, e.Message));
            }

            if (events is not null && quote.TdReport is { } td)
            {
                var replay = RtmrReplay.CheckAgainstQuote(events, td.Rtmrs);
                checks.AddRange(replay);
                identity = DstackAppIdentity.FromEventLog(events);
                var replayed = replay.All(c => c.Outcome == CheckOutcome.Passed);
                checks.AddRange(AppIdentityChecks(report, identity, td, replayed));
            }
            else if (events is not null)
            {
                checks.Add(CheckResult.Fail("event-log.format", ErrorCode.UnsupportedTeeType, "the quote is not a TD quote, so it has no RTMRs to replay"));
            }
        }

        // GPU evidence.
        GpuPayloadVerificationResult? gpu = null;
        if (report.NvidiaPayload is null)
        {
            var why = "not checked: no GPU evidence" + (report.NvidiaPayloadUnavailable is { } reason ? $" ({reason})" : " in the report");
            checks.Add(Options.RequireGpuEvidence
                ? CheckResult.Fail(CheckNames.Gpu, ErrorCode.GpuEvidenceMissing, why + ", and GPU evidence is required")
                : CheckResult.Skip(CheckNames.Gpu, why));
        }
        else
        {
            var verifier = new GpuEvidenceVerifier(Options.Gpu with { AllowSimulated = Options.Gpu.AllowSimulated || Options.AllowSimulated });
            gpu = verifier.Verify(report.NvidiaPayload, nonce.Span, now);
            checks.AddRange(gpu.Checks.Select(c => c with { Name = "gpu." + c.Name }));
            foreach (var g in gpu.Gpus)
            {
                checks.AddRange(g.Checks.Select(c => c with { Name = $"gpu[{g.Index}].{c.Name}" }));
            }

            if (!gpu.Accepted && !checks.Any(c => c.Name.StartsWith("gpu", StringComparison.Ordinal) && c.Outcome == CheckOutcome.Failed))
            {
                checks.Add(CheckResult.Fail(CheckNames.Gpu, gpu.Error ?? ErrorCode.GpuEvidenceMalformed, "the GPU evidence was not accepted"));
            }

            simulated |= gpu.IsSimulated;
        }

        var trusted = dcap is { Accepted: true } && checks.All(c => c.Outcome != CheckOutcome.Failed);
        return new NodeVerificationResult
        {
            Verdict = trusted ? NodeVerdict.Trusted : NodeVerdict.Untrusted,
            Checks = checks,
            VerifiedAt = now,
            Nonce = nonce.ToArray(),
            IsSimulated = simulated,
            ReportJson = reportJson,
            Report = report,
            Collateral = collateral,
            Quote = dcap,
            AppIdentity = identity,
            Gpu = gpu,
            Keyset = keyset,
        };
    }

    /// <summary>
    /// Intel's root for a quote whose chain ends in it. Otherwise the quote claims a simulated root: it is verified
    /// under the pinned simulated root (or its own root), marked simulated, and the policy decides whether that is
    /// admitted — so a strict run still shows every other check and fails on <c>policy.simulated</c>, saying why.
    /// </summary>
    private (DcapVerifierOptions Options, bool Simulated) VerifierOptionsFor(TdxQuote quote)
    {
        var root = ChainRoot(quote);
        if (root is null || IntelSgxRootCa.Is(root))
        {
            return (new DcapVerifierOptions(), false);
        }

        var trusted = Options.SimulatedRootCertificate is { IsEmpty: false } pinned ? pinned : root;
        return (new DcapVerifierOptions { TrustedRootCertificate = trusted, AllowSimulated = true }, true);
    }

    private static byte[]? ChainRoot(TdxQuote quote)
    {
        var data = quote.Signature.CertificationData;
        if (data.Type != CertificationDataType.PckCertificateChain)
        {
            return null;
        }

        // The last PEM certificate of the chain (leaf, PCK CA, root). Bounded by the quote's own limits.
        var text = Encoding.ASCII.GetString(data.Data.Span).TrimEnd('\0').AsSpan();
        byte[]? last = null;
        while (PemEncoding.TryFind(text, out var fields))
        {
            if (text[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                try
                {
                    last = Convert.FromBase64String(text[fields.Base64Data].ToString());
                }
                catch (FormatException)
                {
                    return null;
                }
            }

            text = text[fields.Location.End..];
        }

        return last;
    }

    private static CheckResult SigningKeyBinding(NodeReport report, ReadOnlySpan<byte> reportData)
    {
        const string Name = CheckNames.SigningKeyBinding;
        var identity = report.SigningIdentityBytes();
        if (identity is null)
        {
            return CheckResult.Fail(Name, ErrorCode.SigningKeyNotBound, $"the signing address '{report.SigningAddress}' is not a valid {report.SigningAlgo} identity, so it cannot be bound");
        }

        Span<byte> expected = stackalloc byte[32];
        expected.Clear();
        identity.CopyTo(expected);
        return reportData.Length == 64 && CryptographicOperations.FixedTimeEquals(reportData[..32], expected)
            ? CheckResult.Pass(Name, $"the quote's report_data[0..32) is the {report.SigningAlgo} signing identity {report.SigningAddress}, so answers signed by it come from this TD")
            : CheckResult.Fail(Name, ErrorCode.SigningKeyNotBound, $"the quote's report_data[0..32) is {Convert.ToHexStringLower(reportData[..Math.Min(32, reportData.Length)])}, not the signing identity {report.SigningAddress} padded to 32 bytes: the key in the report is not the key this TD attested");
    }

    private static CheckResult NonceBinding(NodeReport report, ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> nonce)
    {
        const string Name = CheckNames.NonceBinding;
        if (reportData.Length == 64 && CryptographicOperations.FixedTimeEquals(reportData[32..], nonce))
        {
            return CheckResult.Pass(Name, $"the quote's report_data[32..64) is this run's fresh nonce {Convert.ToHexStringLower(nonce)}, so the quote was made now, for us");
        }

        var echoed = report.RequestNonce is null ? string.Empty : $" (the report claims request_nonce {report.RequestNonce})";
        return CheckResult.Fail(Name, ErrorCode.NonceMismatch, $"the quote's report_data[32..64) is {Convert.ToHexStringLower(reportData.Length == 64 ? reportData[32..] : reportData)}, not this run's nonce {Convert.ToHexStringLower(nonce)}{echoed}: a replayed or foreign quote");
    }

    private IEnumerable<CheckResult> AppIdentityChecks(NodeReport report, DstackAppIdentity identity, TdReportBody td, bool replayed)
    {
        var trust = replayed ? string.Empty : " (but the event log does not replay to the quote, so this value is not measured)";
        if (identity.ComposeHash is not { } composeHash)
        {
            yield return CheckResult.Fail(CheckNames.ComposeHash, ErrorCode.AppIdentityMissing, "the event log has no compose-hash event before system-ready");
        }
        else
        {
            var hashHex = Convert.ToHexStringLower(composeHash.Span);
            if (Options.ExpectedAppCompose is { IsEmpty: false } expected)
            {
                var expectedHash = SHA256.HashData(expected.Span);
                yield return CryptographicOperations.FixedTimeEquals(expectedHash, composeHash.Span)
                    ? CheckResult.Pass(CheckNames.ComposeHash, $"the measured compose hash {hashHex} is SHA-256 of the expected app-compose.json{trust}")
                    : CheckResult.Fail(CheckNames.ComposeHash, ErrorCode.ComposeHashMismatch, $"the measured compose hash is {hashHex}, the expected app-compose.json hashes to {Convert.ToHexStringLower(expectedHash)}: the node runs a different app");
            }
            else
            {
                yield return CheckResult.Skip(CheckNames.ComposeHash, $"no expected app-compose.json given; measured compose hash {hashHex}");
            }

            if (report.PublishedAppCompose is { } published)
            {
                var publishedHash = SHA256.HashData(Encoding.UTF8.GetBytes(published));
                yield return CryptographicOperations.FixedTimeEquals(publishedHash, composeHash.Span)
                    ? CheckResult.Pass(CheckNames.PublishedCompose, "the app-compose.json the node published in info.tcb_info hashes to the measured compose hash")
                    : CheckResult.Fail(CheckNames.PublishedCompose, ErrorCode.ComposeHashMismatch, $"the app-compose.json the node published hashes to {Convert.ToHexStringLower(publishedHash)}, not the measured {hashHex}: the node shows a different app than it runs");
            }
            else
            {
                yield return CheckResult.Skip(CheckNames.PublishedCompose, "the node published no app-compose.json in info.tcb_info");
            }

            yield return MrConfigId(td.MrConfigId.Span, composeHash.Span);
        }

        yield return AppIdCheck(identity, replayed, trust);
        yield return identity.InstanceId is { } instanceId
            ? CheckResult.Pass(CheckNames.InstanceId, instanceId.Length == 0 ? "no instance id (no_instance_id)" : $"instance id {Convert.ToHexStringLower(instanceId.Span)}{trust}")
            : CheckResult.Skip(CheckNames.InstanceId, "the event log has no instance-id event");
        yield return KeyProvider(identity, replayed, trust);
    }

    private CheckResult AppIdCheck(DstackAppIdentity identity, bool replayed, string trust)
    {
        const string Name = CheckNames.AppId;
        if (identity.AppId is not { } appId)
        {
            return CheckResult.Fail(Name, ErrorCode.AppIdentityMissing, "the event log has no app-id event");
        }

        var hex = Convert.ToHexStringLower(appId.Span);
        if (Options.ExpectedAppId is not { } expected)
        {
            return CheckResult.Pass(Name, $"app id {hex}{trust}");
        }

        if (!replayed)
        {
            return CheckResult.Fail(Name, ErrorCode.AppIdMismatch, $"app id {hex}{trust}");
        }

        return appId.Span.SequenceEqual(expected.Span)
            ? CheckResult.Pass(Name, $"app id {hex} (expected)")
            : CheckResult.Fail(Name, ErrorCode.AppIdMismatch, $"app id {hex}, not the expected {Convert.ToHexStringLower(expected.Span)}");
    }

    private CheckResult KeyProvider(DstackAppIdentity identity, bool replayed, string trust)
    {
        const string Name = CheckNames.KeyProvider;
        var described = $"key provider {identity.KeyProviderName ?? "?"}{(string.IsNullOrEmpty(identity.KeyProviderId) ? string.Empty : " " + identity.KeyProviderId)}";
        if (Options.ExpectedKeyProviderIds is not { } expected)
        {
            return identity.KeyProviderInfo is not null
                ? CheckResult.Pass(Name, described + trust)
                : CheckResult.Skip(Name, "the event log has no key-provider event");
        }

        if (identity.KeyProviderInfo is null)
        {
            return CheckResult.Fail(Name, ErrorCode.KeyProviderNotExpected, "the event log has no key-provider event, and the keys must come from an expected key provider");
        }

        if (!replayed)
        {
            return CheckResult.Fail(Name, ErrorCode.KeyProviderNotExpected, described + trust);
        }

        return identity.KeyProviderId is { Length: > 0 } id && expected.Any(e => string.Equals(e.Trim(), id, StringComparison.OrdinalIgnoreCase))
            ? CheckResult.Pass(Name, described + " (expected)")
            : CheckResult.Fail(Name, ErrorCode.KeyProviderNotExpected, $"{described}: not one of the expected key providers ({string.Join(", ", expected)})");
    }

    private static CheckResult MrConfigId(ReadOnlySpan<byte> mrConfigId, ReadOnlySpan<byte> composeHash)
    {
        const string Name = CheckNames.MrConfigId;
        if (!mrConfigId.ContainsAnyExcept((byte)0))
        {
            return CheckResult.Skip(Name, "MR_CONFIG_ID is zero: the host did not bind the compose hash into the TD's configuration");
        }

        if (mrConfigId[0] == 1)
        {
            Span<byte> expected = stackalloc byte[48];
            expected.Clear();
            expected[0] = 1;
            composeHash.CopyTo(expected[1..]);
            return mrConfigId.SequenceEqual(expected)
                ? CheckResult.Pass(Name, "MR_CONFIG_ID (v1) is 01 ‖ the measured compose hash")
                : CheckResult.Fail(Name, ErrorCode.MrConfigIdMismatch, $"MR_CONFIG_ID is {Convert.ToHexStringLower(mrConfigId)}, not 01 ‖ the measured compose hash");
        }

        return CheckResult.Skip(Name, $"MR_CONFIG_ID version {mrConfigId[0]} is not checked by this client");
    }

    private NodeVerificationResult FetchFailed(Uri baseAddress, byte[] nonce, string why)
    {
        var failed = Untrusted(Options.Time.GetUtcNow(), nonce, ReadOnlyMemory<byte>.Empty, CheckResult.Fail(CheckNames.ReportFetch, ErrorCode.ReportUnavailable, why));
        return failed with { BaseAddress = baseAddress.ToString() };
    }

    private static NodeVerificationResult Untrusted(DateTimeOffset now, ReadOnlyMemory<byte> nonce, ReadOnlyMemory<byte> reportJson, params CheckResult[] checks) => new()
    {
        Verdict = NodeVerdict.Untrusted,
        Checks = checks,
        VerifiedAt = now,
        Nonce = nonce.ToArray(),
        ReportJson = reportJson,
    };

    private static async Task<byte[]?> ReadBoundedAsync(HttpContent content, int max, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > max)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
