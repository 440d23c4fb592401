using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Cli.Commands;

/// <summary><c>privateml quote show FILE [--json]</c> and <c>privateml quote verify FILE --collateral FILE [--at TIME] [--policy FILE] [--json]</c>.</summary>
internal static class QuoteCommands
{
    public static Command Create()
    {
        var command = new Command("quote", "Parse and verify Intel DCAP quotes");
        command.Subcommands.Add(CreateShow());
        command.Subcommands.Add(CreateVerify());
        return command;
    }

    private static Command CreateShow()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "Quote file: raw binary, hex (optionally 0x-prefixed) or base64" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text" };
        var show = new Command("show", "Print every field of a TDX or SGX quote") { file, json };
        show.SetAction(parse => Show(parse.GetValue(file)!, parse.GetValue(json), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return show;
    }

    private static Command CreateVerify()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "Quote file: raw binary, hex (optionally 0x-prefixed) or base64" };
        var collateral = new Option<FileInfo>("--collateral") { Description = "Collateral JSON (dcap-qvl format)" };
        var at = new Option<string>("--at") { Description = "Verification time: unix seconds or ISO-8601 (default: now)" };
        var policy = new Option<FileInfo>("--policy") { Description = "Policy JSON file" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text" };
        var allowSimulated = new Option<bool>("--allow-simulated") { Description = "Trust the root given by --trust-root (e.g. the simulator's); results say SIMULATED" };
        var trustRoot = new Option<FileInfo>("--trust-root") { Description = "Root certificate (DER or PEM) to trust instead of Intel's; needs --allow-simulated" };
        var verify = new Command("verify", "Verify a quote offline against DCAP collateral (exit 0 accepted, 1 rejected, 2 usage or input error)")
        {
            file, collateral, at, policy, json, allowSimulated, trustRoot,
        };
        verify.SetAction(parse => Verify(
            new VerifyArguments(
                parse.GetValue(file)!,
                parse.GetValue(collateral),
                parse.GetValue(at),
                parse.GetValue(policy),
                parse.GetValue(json),
                parse.GetValue(allowSimulated),
                parse.GetValue(trustRoot)),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return verify;
    }

    internal static int Show(FileInfo file, bool json, TextWriter output, TextWriter error)
    {
        if (!TryReadQuote(file, error, out var quote))
        {
            return ExitCodes.UsageOrInput;
        }

        if (json)
        {
            output.WriteLine(QuoteJson.Quote(quote));
        }
        else
        {
            QuoteText.Write(quote, output);
        }

        return ExitCodes.Accepted;
    }

    internal sealed record VerifyArguments(
        FileInfo File,
        FileInfo? Collateral,
        string? At,
        FileInfo? Policy,
        bool Json,
        bool AllowSimulated = false,
        FileInfo? TrustRoot = null);

    internal static int Verify(VerifyArguments arguments, TextWriter output, TextWriter error)
    {
        var (file, collateralFile, at, policyFile, json, allowSimulated, trustRootFile) = arguments;
        if (collateralFile is null)
        {
            error.WriteLine("error: --collateral FILE is required");
            return ExitCodes.UsageOrInput;
        }

        if (!TryParseTime(at, out var now))
        {
            error.WriteLine($"error: --at \"{at}\" is neither unix seconds nor an ISO-8601 time");
            return ExitCodes.UsageOrInput;
        }

        if ((trustRootFile is null) != !allowSimulated)
        {
            error.WriteLine("error: --allow-simulated and --trust-root FILE go together (trusting another root is explicit)");
            return ExitCodes.UsageOrInput;
        }

        if (policyFile is not null && !policyFile.Exists)
        {
            error.WriteLine($"error: policy file {policyFile.FullName} does not exist");
            return ExitCodes.UsageOrInput;
        }

        if (!TryReadQuoteBytes(file, error, out var quoteBytes) || !TryReadCollateral(collateralFile, error, out var collateral))
        {
            return ExitCodes.UsageOrInput;
        }

        if (!TdxQuote.TryParse(quoteBytes, out _, out var parseError))
        {
            error.WriteLine($"error: {file.Name} is not a valid quote ({parseError.Code}): {parseError.Message}");
            return ExitCodes.UsageOrInput;
        }

        var verifierOptions = new DcapVerifierOptions();
        if (trustRootFile is not null)
        {
            if (!TryReadRoot(trustRootFile, error, out var rootDer))
            {
                return ExitCodes.UsageOrInput;
            }

            verifierOptions = verifierOptions with { TrustedRootCertificate = rootDer, AllowSimulated = true };
        }

        var result = new DcapVerifier(verifierOptions).Verify(quoteBytes, collateral, now);
        IReadOnlyList<CheckResult> policyChecks;
        try
        {
            var policy = policyFile is null ? AttestationPolicy.Default : AttestationPolicy.Load(policyFile.FullName);
            if (allowSimulated)
            {
                policy = policy with { AllowSimulated = true };
            }

            policyChecks = PolicyEvaluator.Evaluate(policy, result).Checks;
        }
        catch (Exception ex) when (ex is AttestationException or IOException or JsonException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: the policy could not be applied: {ex.Message}");
            return ExitCodes.UsageOrInput;
        }

        var accepted = result.Accepted && policyChecks.All(c => c.Outcome != CheckOutcome.Failed);
        if (json)
        {
            output.WriteLine(QuoteJson.Verification(result, policyChecks, accepted));
        }
        else
        {
            QuoteText.WriteVerification(result, policyChecks, accepted, output);
        }

        return accepted ? ExitCodes.Accepted : ExitCodes.Rejected;
    }

    private static bool TryReadRoot(FileInfo file, TextWriter error, out byte[] der)
    {
        der = [];
        try
        {
            var bytes = File.ReadAllBytes(file.FullName);
            var text = Encoding.ASCII.GetString(bytes);
            der = text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)
                ? System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(text).RawData
                : bytes;
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            error.WriteLine($"error: cannot read the root certificate {file.FullName}: {ex.Message}");
            return false;
        }
    }

    internal static bool TryParseTime(string? text, out DateTimeOffset time)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            time = TimeProvider.System.GetUtcNow();
            return true;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds <= 253402300799)
        {
            time = DateTimeOffset.FromUnixTimeSeconds(seconds);
            return true;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out time)
            && text.Contains('T', StringComparison.Ordinal) || DateTimeOffset.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out time);
    }

    private static bool TryReadQuote(FileInfo file, TextWriter error, out TdxQuote quote)
    {
        quote = null!;
        if (!TryReadQuoteBytes(file, error, out var bytes))
        {
            return false;
        }

        if (!TdxQuote.TryParse(bytes, out var parsed, out var parseError))
        {
            error.WriteLine($"error: {file.Name} is not a valid quote ({parseError.Code}): {parseError.Message}");
            return false;
        }

        quote = parsed;
        return true;
    }

    private static bool TryReadQuoteBytes(FileInfo file, TextWriter error, out byte[] bytes)
    {
        bytes = [];
        try
        {
            if (!file.Exists)
            {
                error.WriteLine($"error: quote file {file.FullName} does not exist");
                return false;
            }

            if (file.Length > QuoteLimits.MaxEncodedInputSize)
            {
                error.WriteLine($"error: {file.Name} is {file.Length} bytes, larger than any quote ({QuoteLimits.MaxEncodedInputSize})");
                return false;
            }

            bytes = QuoteInput.Decode(File.ReadAllBytes(file.FullName));
            return true;
        }
        catch (AttestationException ex)
        {
            error.WriteLine($"error: {file.Name}: {ex.Message} ({ex.Code})");
            return false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: cannot read {file.FullName}: {ex.Message}");
            return false;
        }
    }

    private static bool TryReadCollateral(FileInfo file, TextWriter error, out DcapCollateral collateral)
    {
        collateral = null!;
        try
        {
            if (!file.Exists)
            {
                error.WriteLine($"error: collateral file {file.FullName} does not exist");
                return false;
            }

            if (file.Length > 16 * 1024 * 1024)
            {
                error.WriteLine($"error: {file.Name} is too large to be DCAP collateral");
                return false;
            }

            var parsed = JsonSerializer.Deserialize<DcapCollateral>(File.ReadAllBytes(file.FullName));
            if (parsed is null)
            {
                error.WriteLine($"error: {file.Name} holds no collateral object");
                return false;
            }

            collateral = parsed;
            return true;
        }
        catch (JsonException ex)
        {
            error.WriteLine($"error: {file.Name} is not dcap-qvl collateral JSON: {ex.Message}");
            return false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: cannot read {file.FullName}: {ex.Message}");
            return false;
        }
    }
}

/// <summary>Human-readable output: one line per field or check.</summary>
internal static class QuoteText
{
    public static void Write(TdxQuote q, TextWriter o)
    {
        var h = q.Header;
        o.WriteLine($"quote: {(q.IsTdx ? "TDX" : "SGX")} v{h.Version}, {q.BodyKind} body, {q.Bytes.Length} bytes ({q.SignedLength} signed, {q.TrailingBytes.Length} trailing)");
        Line(o, "attestation_key_type", $"{(int)h.AttestationKeyType} ({h.AttestationKeyType})");
        Line(o, "tee_type", $"0x{(uint)h.TeeType:x8}");
        if (h.Version == 3)
        {
            Line(o, "qe_svn", h.QeSvn.ToString(CultureInfo.InvariantCulture));
            Line(o, "pce_svn", h.PceSvn.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            Line(o, "header_reserved", Hex(h.Reserved));
        }

        Line(o, "qe_vendor_id", Hex(h.QeVendorId));
        Line(o, "user_data", Hex(h.UserData));
        if (q.BodyDescriptorSize is { } size)
        {
            Line(o, "body_descriptor", $"type {(int)q.BodyKind}, size {size}");
        }

        if (q.TdReport is { } td)
        {
            Line(o, "tee_tcb_svn", Hex(td.TeeTcbSvn));
            Line(o, "mr_seam", Hex(td.MrSeam));
            Line(o, "mr_signer_seam", Hex(td.MrSignerSeam));
            Line(o, "seam_attributes", Hex(td.SeamAttributes));
            Line(o, "td_attributes", $"{Hex(td.TdAttributes)} [{string.Join(' ', TdAttributeNames.Describe(td.Attributes))}]{(td.IsDebug ? " DEBUG TD" : string.Empty)}");
            Line(o, "xfam", $"{Hex(td.Xfam)} [{string.Join(' ', TdAttributeNames.Describe(td.XfamFeatures))}]");
            Line(o, "mr_td", Hex(td.MrTd));
            Line(o, "mr_config_id", Hex(td.MrConfigId));
            Line(o, "mr_owner", Hex(td.MrOwner));
            Line(o, "mr_owner_config", Hex(td.MrOwnerConfig));
            Line(o, "rtmr0", Hex(td.Rtmr0));
            Line(o, "rtmr1", Hex(td.Rtmr1));
            Line(o, "rtmr2", Hex(td.Rtmr2));
            Line(o, "rtmr3", Hex(td.Rtmr3));
            Line(o, "report_data", Hex(td.ReportData));
            if (td.TeeTcbSvn2 is { } svn2)
            {
                Line(o, "tee_tcb_svn2", Hex(svn2));
                Line(o, "mr_service_td", Hex(td.MrServiceTd ?? default));
            }
        }
        else if (q.SgxReport is { } sgx)
        {
            WriteSgx(o, sgx, string.Empty);
        }

        var s = q.Signature;
        Line(o, "quote_signature", Hex(s.QuoteSignature));
        Line(o, "attestation_public_key", Hex(s.AttestationPublicKey));
        if (s.OuterCertificationDataType is { } outer)
        {
            Line(o, "outer_certification_data", $"type {(int)outer} ({outer}), {s.OuterCertificationDataSize} bytes");
        }

        WriteSgx(o, s.QeReport, "qe_report.");
        Line(o, "qe_report_signature", Hex(s.QeReportSignature));
        Line(o, "qe_auth_data", Hex(s.QeAuthData));
        Line(o, "certification_data", $"type {(int)s.CertificationData.Type} ({s.CertificationData.Type}), {s.CertificationData.Data.Length} bytes");
    }

    private static void WriteSgx(TextWriter o, SgxReportBody b, string prefix)
    {
        Line(o, prefix + "cpu_svn", Hex(b.CpuSvn));
        Line(o, prefix + "misc_select", b.MiscSelect.ToString("x8", CultureInfo.InvariantCulture));
        Line(o, prefix + "attributes", $"{Hex(b.Attributes)}{(b.IsDebug ? " DEBUG" : string.Empty)}");
        Line(o, prefix + "mr_enclave", Hex(b.MrEnclave));
        Line(o, prefix + "mr_signer", Hex(b.MrSigner));
        Line(o, prefix + "isv_prod_id", b.IsvProdId.ToString(CultureInfo.InvariantCulture));
        Line(o, prefix + "isv_svn", b.IsvSvn.ToString(CultureInfo.InvariantCulture));
        if (prefix.Length == 0)
        {
            Line(o, "isv_ext_prod_id", Hex(b.IsvExtProdId));
            Line(o, "config_id", Hex(b.ConfigId));
            Line(o, "config_svn", b.ConfigSvn.ToString(CultureInfo.InvariantCulture));
            Line(o, "isv_family_id", Hex(b.IsvFamilyId));
        }

        Line(o, prefix + "report_data", Hex(b.ReportData));
    }

    public static void WriteVerification(QuoteVerificationResult r, IReadOnlyList<CheckResult> policy, bool accepted, TextWriter o)
    {
        if (r.IsSimulated)
        {
            o.WriteLine("*** SIMULATED: the trust anchor is not Intel's; this proves nothing about real hardware ***");
        }

        o.WriteLine($"verification time: {r.VerifiedAt.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}");
        var width = r.Checks.Concat(policy).Max(c => c.Name.Length);
        foreach (var c in r.Checks.Concat(policy))
        {
            var mark = c.Outcome switch { CheckOutcome.Passed => "✔", CheckOutcome.Failed => "✘", _ => "–" };
            var detail = c.Outcome == CheckOutcome.Skipped ? "skipped: " + c.Detail : c.Detail;
            var code = c.Code is { } e ? $" [{e}]" : string.Empty;
            o.WriteLine($"{mark} {c.Name.PadRight(width)}  {detail}{code}");
        }

        var status = r.Status is { } s ? $"TCB {s}" + (r.AdvisoryIds.Count > 0 ? $" [{string.Join(", ", r.AdvisoryIds)}]" : string.Empty) : "no TCB status";
        var reason = r.FirstFailure ?? policy.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed);
        o.WriteLine(accepted
            ? $"ACCEPTED{(r.IsSimulated ? " (SIMULATED)" : string.Empty)}: {status}"
            : $"REJECTED: {reason?.Code}: {reason?.Detail} ({status})");
    }

    private static void Line(TextWriter o, string name, string value) => o.WriteLine($"  {name,-28} {value}");

    private static string Hex(ReadOnlyMemory<byte> bytes) => Convert.ToHexStringLower(bytes.Span);
}

/// <summary>JSON output (hex byte strings, enum names).</summary>
internal static class QuoteJson
{
    private static readonly JsonWriterOptions Indented = new() { Indented = true };

    public static string Quote(TdxQuote q) => Write(w => WriteQuote(w, q));

    public static string Verification(QuoteVerificationResult r, IReadOnlyList<CheckResult> policy, bool accepted) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteBoolean("accepted", accepted);
        w.WriteBoolean("authentic", r.Accepted);
        w.WriteBoolean("simulated", r.IsSimulated);
        w.WriteString("verified_at", r.VerifiedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        Nullable(w, "error", r.Error?.ToString() ?? policy.FirstOrDefault(c => c.Outcome == CheckOutcome.Failed)?.Code?.ToString());
        Nullable(w, "status", r.Status?.ToString());
        Nullable(w, "platform_tcb_status", r.PlatformTcbStatus?.ToString());
        Nullable(w, "tdx_module_tcb_status", r.TdxModuleTcbStatus?.ToString());
        Nullable(w, "qe_tcb_status", r.QeTcbStatus?.ToString());
        Nullable(w, "current_tcb_status", r.CurrentTcbStatus?.ToString());
        w.WriteBoolean("td_relaunch_advised", r.TdRelaunchAdvised);
        w.WriteStartArray("advisory_ids");
        foreach (var id in r.AdvisoryIds)
        {
            w.WriteStringValue(id);
        }

        w.WriteEndArray();
        Nullable(w, "fmspc", r.Fmspc);
        Nullable(w, "pck_ca", r.PckCaType?.ToString());
        if (r.TcbEvaluationDataNumber is { } n)
        {
            w.WriteNumber("tcb_evaluation_data_number", n);
        }

        Nullable(w, "tcb_date", r.TcbDate?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        Shortfalls(w, "shortfalls", r.Shortfalls);
        Shortfalls(w, "shortfalls_to_up_to_date", r.ShortfallsToUpToDate);
        Checks(w, "checks", r.Checks);
        Checks(w, "policy", policy);
        if (r.Quote is { } q)
        {
            w.WritePropertyName("quote");
            WriteQuote(w, q);
        }

        w.WriteEndObject();
    });

    private static void WriteQuote(Utf8JsonWriter w, TdxQuote q)
    {
        var h = q.Header;
        w.WriteStartObject();
        w.WriteNumber("version", h.Version);
        w.WriteNumber("attestation_key_type", (int)h.AttestationKeyType);
        w.WriteString("tee_type", $"0x{(uint)h.TeeType:x8}");
        w.WriteString("tee", q.IsTdx ? "TDX" : "SGX");
        if (h.Version == 3)
        {
            w.WriteNumber("qe_svn", h.QeSvn);
            w.WriteNumber("pce_svn", h.PceSvn);
        }
        else
        {
            Hex(w, "header_reserved_8_11", h.Reserved);
        }

        Hex(w, "qe_vendor_id", h.QeVendorId);
        Hex(w, "user_data", h.UserData);
        if (q.BodyDescriptorSize is { } size)
        {
            w.WriteNumber("body_type", (int)q.BodyKind);
            w.WriteNumber("body_size", size);
        }

        w.WriteNumber("report_body_offset", q.ReportBodyOffset);
        w.WriteNumber("report_body_length", q.ReportBodyLength);
        w.WriteString("report_kind", q.BodyKind switch { ReportBodyKind.Td10 => "TD10", ReportBodyKind.Td15 => "TD15", _ => "SGX" });
        if (q.TdReport is { } td)
        {
            Hex(w, "tee_tcb_svn", td.TeeTcbSvn);
            Hex(w, "mr_seam", td.MrSeam);
            Hex(w, "mr_signer_seam", td.MrSignerSeam);
            Hex(w, "seam_attributes", td.SeamAttributes);
            Hex(w, "td_attributes", td.TdAttributes);
            Hex(w, "xfam", td.Xfam);
            Hex(w, "mr_td", td.MrTd);
            Hex(w, "mr_config_id", td.MrConfigId);
            Hex(w, "mr_owner", td.MrOwner);
            Hex(w, "mr_owner_config", td.MrOwnerConfig);
            Hex(w, "rtmr0", td.Rtmr0);
            Hex(w, "rtmr1", td.Rtmr1);
            Hex(w, "rtmr2", td.Rtmr2);
            Hex(w, "rtmr3", td.Rtmr3);
            Hex(w, "report_data", td.ReportData);
            if (td.TeeTcbSvn2 is { } svn2)
            {
                Hex(w, "tee_tcb_svn2", svn2);
                Hex(w, "mr_service_td", td.MrServiceTd ?? default);
            }

            w.WriteString("td_attributes_u64", $"0x{(ulong)td.Attributes:x16}");
            Strings(w, "td_attributes_set", TdAttributeNames.Describe(td.Attributes));
            w.WriteBoolean("td_debug", td.IsDebug);
            w.WriteString("xfam_u64", $"0x{(ulong)td.XfamFeatures:x16}");
            Strings(w, "xfam_set", TdAttributeNames.Describe(td.XfamFeatures));
        }
        else if (q.SgxReport is { } sgx)
        {
            Sgx(w, sgx);
            w.WriteBoolean("sgx_debug", sgx.IsDebug);
        }

        w.WriteNumber("signed_length", q.SignedLength);
        w.WriteNumber("bytes_after_signature_data", q.TrailingBytes.Length);
        var s = q.Signature;
        Hex(w, "quote_signature", s.QuoteSignature);
        Hex(w, "attestation_public_key", s.AttestationPublicKey);
        if (s.OuterCertificationDataType is { } outer)
        {
            w.WriteNumber("outer_certification_data_type", (int)outer);
            w.WriteNumber("outer_certification_data_size", s.OuterCertificationDataSize ?? 0);
        }

        Hex(w, "qe_report_signature", s.QeReportSignature);
        Hex(w, "qe_auth_data", s.QeAuthData);
        w.WriteNumber("certification_data_type", (int)s.CertificationData.Type);
        w.WriteNumber("certification_data_size", s.CertificationData.Data.Length);
        w.WritePropertyName("qe_report");
        w.WriteStartObject();
        Sgx(w, s.QeReport);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Sgx(Utf8JsonWriter w, SgxReportBody b)
    {
        Hex(w, "cpu_svn", b.CpuSvn);
        w.WriteString("misc_select", b.MiscSelect.ToString("x8", CultureInfo.InvariantCulture));
        Hex(w, "isv_ext_prod_id", b.IsvExtProdId);
        Hex(w, "attributes", b.Attributes);
        Hex(w, "mr_enclave", b.MrEnclave);
        Hex(w, "mr_signer", b.MrSigner);
        Hex(w, "config_id", b.ConfigId);
        w.WriteNumber("isv_prod_id", b.IsvProdId);
        w.WriteNumber("isv_svn", b.IsvSvn);
        w.WriteNumber("config_svn", b.ConfigSvn);
        Hex(w, "isv_family_id", b.IsvFamilyId);
        Hex(w, "report_data", b.ReportData);
    }

    private static void Checks(Utf8JsonWriter w, string name, IEnumerable<CheckResult> checks)
    {
        w.WriteStartArray(name);
        foreach (var c in checks)
        {
            w.WriteStartObject();
            w.WriteString("name", c.Name);
            w.WriteString("outcome", c.Outcome.ToString());
            Nullable(w, "code", c.Code?.ToString());
            w.WriteString("detail", c.Detail);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void Shortfalls(Utf8JsonWriter w, string name, IEnumerable<TcbComponentShortfall> shortfalls)
    {
        w.WriteStartArray(name);
        foreach (var s in shortfalls)
        {
            w.WriteStartObject();
            w.WriteString("kind", s.Kind.ToString());
            w.WriteNumber("index", s.Index);
            w.WriteString("name", s.Name);
            w.WriteNumber("actual", s.Actual);
            w.WriteNumber("required", s.Required);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void Strings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values)
        {
            w.WriteStringValue(v);
        }

        w.WriteEndArray();
    }

    private static void Hex(Utf8JsonWriter w, string name, ReadOnlyMemory<byte> bytes) => w.WriteString(name, Convert.ToHexStringLower(bytes.Span));

    private static void Nullable(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    private static string Write(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, Indented))
        {
            body(w);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
