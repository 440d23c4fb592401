using System.Net;
using System.Text;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Client;

/// <summary>
/// A self-contained HTML page (inline CSS, no scripts, no external assets) showing the verdict and every check in
/// green / red / grey with its evidence: measurements, TCB status and advisories, app identity, GPUs, signing key, nonce.
/// Every value from the node is HTML-encoded.
/// </summary>
public static class NodeReportHtml
{
    public static string Render(NodeVerificationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var s = new StringBuilder();
        var verdict = result.Trusted ? (result.IsSimulated ? "TRUSTED (SIMULATED)" : "TRUSTED") : "NOT TRUSTED";
        s.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">")
            .Append("<title>privateml verify: ").Append(E(verdict)).Append("</title><style>")
            .Append("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}")
            .Append(".verdict{font-size:1.6em;padding:.6em 1em;border-radius:.4em;color:#fff}")
            .Append(".trusted{background:#1a7f37}.untrusted{background:#cf222e}.simulated{background:#9a6700}")
            .Append("table{border-collapse:collapse;width:100%;margin-top:1em}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}")
            .Append("tr.passed td.o{color:#1a7f37}tr.failed td.o{color:#cf222e;font-weight:bold}tr.skipped td.o{color:#6e7781}")
            .Append("code{font-size:.85em;word-break:break-all}")
            .Append("#failures{color:#cf222e;font-weight:bold}#checks td:nth-child(2){white-space:nowrap}")
            .Append("#simulated{border:2px solid #9a6700;color:#9a6700;padding:.4em 1em;border-radius:.4em;font-weight:bold}")
            .Append("</style></head><body>");
        var cls = !result.Trusted ? "untrusted" : result.IsSimulated ? "simulated" : "trusted";
        s.Append("<div id=\"verdict\" class=\"verdict ").Append(cls).Append("\" data-trusted=\"").Append(result.Trusted ? "true" : "false").Append("\">").Append(E(verdict)).Append("</div>");
        var failed = result.Checks.Count(c => c.Outcome == CheckOutcome.Failed);
        var passed = result.Checks.Count(c => c.Outcome == CheckOutcome.Passed);
        s.Append("<p id=\"summary\">").Append(passed).Append(" passed, ").Append(failed).Append(" failed, ")
            .Append(result.Checks.Count - passed - failed).Append(" not checked");
        if (result.FirstFailure is { } first)
        {
            s.Append("; first failure: <code>").Append(E(first.Name)).Append("</code>");
        }

        s.Append("</p>");
        if (failed > 0)
        {
            s.Append("<ul id=\"failures\">");
            foreach (var c in result.Failures)
            {
                s.Append("<li data-check=\"").Append(E(c.Name)).Append("\">✘ <code>").Append(E(c.Name)).Append("</code>: ").Append(E(c.Detail)).Append("</li>");
            }

            s.Append("</ul>");
        }

        if (result.IsSimulated)
        {
            s.Append("<p id=\"simulated\">SIMULATED evidence: signed by a simulated root, not by Intel. It proves nothing about real hardware.</p>");
        }
        s.Append("<h2>Evidence</h2><table id=\"evidence\">");
        Row(s, "Node", result.BaseAddress ?? "(saved evidence)");
        Row(s, "Verified at", result.VerifiedAt.ToString("u", System.Globalization.CultureInfo.InvariantCulture));
        Row(s, "Nonce", Convert.ToHexStringLower(result.Nonce.Span));
        if (result.Report is { } r)
        {
            Row(s, "Signing key", $"{r.SigningAddress} ({r.SigningAlgo})");
        }

        if (result.Quote is { } q)
        {
            Row(s, "TCB status", q.Status?.ToString() ?? "none");
            Row(s, "Advisories", q.AdvisoryIds.Count == 0 ? "none" : string.Join(", ", q.AdvisoryIds));
            Row(s, "Root of trust", q.IsSimulated ? "SIMULATED root (not Intel)" : "Intel SGX Root CA");
            if (q.Quote?.TdReport is { } td)
            {
                Row(s, "MR_TD", Convert.ToHexStringLower(td.MrTd.Span));
                Row(s, "RTMR0", Convert.ToHexStringLower(td.Rtmr0.Span));
                Row(s, "RTMR1", Convert.ToHexStringLower(td.Rtmr1.Span));
                Row(s, "RTMR2", Convert.ToHexStringLower(td.Rtmr2.Span));
                Row(s, "RTMR3", Convert.ToHexStringLower(td.Rtmr3.Span));
                Row(s, "MR_CONFIG_ID", Convert.ToHexStringLower(td.MrConfigId.Span));
                Row(s, "report_data", Convert.ToHexStringLower(td.ReportData.Span));
            }
        }

        if (result.AppIdentity is { } app)
        {
            Row(s, "Compose hash", app.ComposeHash is { } h ? Convert.ToHexStringLower(h.Span) : "none");
            Row(s, "App id", app.AppId is { } a ? Convert.ToHexStringLower(a.Span) : "none");
            Row(s, "Instance id", app.InstanceId is { } i ? Convert.ToHexStringLower(i.Span) : "none");
            Row(s, "Key provider", app.KeyProviderInfo ?? "none");
        }

        if (result.Gpu is { } gpu)
        {
            foreach (var g in gpu.Gpus)
            {
                Row(s, $"GPU {g.Index}", $"{g.Arch}, driver {g.DriverVersion ?? "?"}, VBIOS {g.VbiosVersion ?? "?"}, {(g.Accepted ? "accepted" : "NOT accepted")}");
            }
        }
        else
        {
            Row(s, "GPU", "no GPU evidence");
        }

        s.Append("</table><h2>Checks</h2><table id=\"checks\"><tr><th></th><th>Check</th><th>Detail</th></tr>");
        foreach (var c in result.Checks)
        {
            var outcome = c.Outcome switch
            {
                CheckOutcome.Passed => "passed",
                CheckOutcome.Failed => "failed",
                _ => "skipped",
            };
            var mark = c.Outcome switch
            {
                CheckOutcome.Passed => "✔",
                CheckOutcome.Failed => "✘",
                _ => "–",
            };
            s.Append("<tr class=\"").Append(outcome).Append("\" data-check=\"").Append(E(c.Name)).Append("\"><td class=\"o\">").Append(mark)
                .Append("</td><td><code>").Append(E(c.Name)).Append("</code></td><td>").Append(E(c.Detail));
            if (c.Code is { } code)
            {
                s.Append(" <code>[").Append(E(code.ToString())).Append("]</code>");
            }

            s.Append("</td></tr>");
        }

        s.Append("</table><p>Computed on this machine by privateml verify; nothing was sent to a third-party verifier.</p></body></html>");
        return s.ToString();
    }

    private static void Row(StringBuilder s, string name, string value) =>
        s.Append("<tr><th>").Append(E(name)).Append("</th><td><code>").Append(E(value)).Append("</code></td></tr>");

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
