using System.Globalization;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Client;

/// <summary>The machine-readable form of a <see cref="NodeVerificationResult"/> (stable member names).</summary>
public static class NodeResultJson
{
    public static string Serialize(NodeVerificationResult result, bool indented = true)
    {
        ArgumentNullException.ThrowIfNull(result);
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented }))
        {
            WriteVerdict(w, result);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static void WriteVerdict(Utf8JsonWriter w, NodeVerificationResult result)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(result);
        w.WriteStartObject();
        w.WriteString("verdict", result.Trusted ? "trusted" : "untrusted");
        w.WriteBoolean("trusted", result.Trusted);
        w.WriteBoolean("simulated", result.IsSimulated);
        if (result.BaseAddress is not null)
        {
            w.WriteString("url", result.BaseAddress);
        }

        w.WriteString("verified_at", result.VerifiedAt.ToString("O", CultureInfo.InvariantCulture));
        w.WriteString("nonce", Convert.ToHexStringLower(result.Nonce.Span));
        if (result.Report is { } report)
        {
            w.WriteString("signing_address", report.SigningAddress);
            w.WriteString("signing_algo", report.SigningAlgo);
        }

        if (result.Quote is { } quote)
        {
            if (quote.Status is { } status)
            {
                w.WriteString("tcb_status", status.ToString());
            }

            w.WriteStartArray("advisory_ids");
            foreach (var id in quote.AdvisoryIds)
            {
                w.WriteStringValue(id);
            }

            w.WriteEndArray();
            if (quote.Quote?.TdReport is { } td)
            {
                w.WriteStartObject("measurements");
                w.WriteString("mr_td", Convert.ToHexStringLower(td.MrTd.Span));
                w.WriteString("rtmr0", Convert.ToHexStringLower(td.Rtmr0.Span));
                w.WriteString("rtmr1", Convert.ToHexStringLower(td.Rtmr1.Span));
                w.WriteString("rtmr2", Convert.ToHexStringLower(td.Rtmr2.Span));
                w.WriteString("rtmr3", Convert.ToHexStringLower(td.Rtmr3.Span));
                w.WriteString("mr_config_id", Convert.ToHexStringLower(td.MrConfigId.Span));
                w.WriteString("report_data", Convert.ToHexStringLower(td.ReportData.Span));
                w.WriteEndObject();
            }
        }

        if (result.AppIdentity is { } app)
        {
            w.WriteStartObject("app");
            WriteHex(w, "compose_hash", app.ComposeHash);
            WriteHex(w, "app_id", app.AppId);
            WriteHex(w, "instance_id", app.InstanceId);
            if (app.KeyProviderInfo is not null)
            {
                w.WriteString("key_provider", app.KeyProviderInfo);
            }

            w.WriteEndObject();
        }

        if (result.Gpu is { } gpu)
        {
            w.WriteStartArray("gpus");
            foreach (var g in gpu.Gpus)
            {
                w.WriteStartObject();
                w.WriteNumber("index", g.Index);
                w.WriteString("arch", g.Arch);
                w.WriteBoolean("accepted", g.Accepted);
                if (g.DriverVersion is not null)
                {
                    w.WriteString("driver_version", g.DriverVersion);
                }

                if (g.VbiosVersion is not null)
                {
                    w.WriteString("vbios_version", g.VbiosVersion);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        w.WriteStartArray("checks");
        foreach (var c in result.Checks)
        {
            w.WriteStartObject();
            w.WriteString("name", c.Name);
            w.WriteString("outcome", c.Outcome switch
            {
                CheckOutcome.Passed => "passed",
                CheckOutcome.Failed => "failed",
                _ => "skipped",
            });
            if (c.Code is { } code)
            {
                w.WriteString("code", code.ToString());
            }

            w.WriteString("detail", c.Detail);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteHex(Utf8JsonWriter w, string name, ReadOnlyMemory<byte>? value)
    {
        if (value is { } v)
        {
            w.WriteString(name, Convert.ToHexStringLower(v.Span));
        }
    }
}
