using System.Diagnostics;
using System.Text.Json;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Proxy;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Attestation;

/// <summary>
/// The ACI report (<c>/v1/attestation/report?format=aci&amp;nonce=…</c>, aci.md §4): <c>report_data</c> =
/// sha256 of the ACI statement over the keyset digest and the client's nonce (bytes 32–63 zero). It carries the ACI
/// members (<c>api_version</c>, <c>workload_keyset_digest</c>, <c>attestation {tee_type, workload_keyset, report_data,
/// source_provenance, evidence}</c>, <c>service_capabilities</c>) and, for clients of the seed format, the same evidence
/// under the seed's names with the Ed25519 receipt key as <c>signing_address</c>.
/// </summary>
internal sealed partial class AttestationReportBuilder
{
    public const string AciApiVersion = "aci/1";

    public async Task<(ReportError Error, byte[]? Json)> BuildAciAsync(string? nonceText, CancellationToken cancellationToken)
    {
        if (nonceText is not null && !AciStatement.IsValidNonce(nonceText))
        {
            return (ReportError.InvalidNonce, null);
        }

        if (agent is null)
        {
            return (ReportError.NoAgent, null);
        }

        var started = Stopwatch.GetTimestamp();
        var set = keyset.Keyset.Public;
        var reportData = AciStatement.ReportDataSlot(set.Digest, nonceText);
        var gpuNonce = nonceText is null ? reportData[..32] : Convert.FromHexString(nonceText);
        var quoteTask = agent.GetQuoteAsync(reportData, cancellationToken);
        var infoTask = agent.InfoAsync(cancellationToken);
        var gpuTask = GpuEvidenceAsync(gpuNonce, cancellationToken);
        var quote = await quoteTask;
        var info = await infoTask;
        var (nvidia, gpuUnavailable) = await gpuTask;
        var receiptKey = keys.Keys.Ed25519Key.Address;

        // The agent's answer arrives on a socket thread under serve's inline I/O; writing a report (quote, event log,
        // each GPU's evidence, every peer's whole report) is not work for it.
        await SocketThread.Leave();

        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("api_version", AciApiVersion);
            w.WriteString("workload_keyset_digest", set.Digest);
            w.WriteStartObject("attestation");
            w.WriteString("tee_type", "tdx");
            w.WritePropertyName("workload_keyset");
            w.WriteRawValue(set.CanonicalJson, skipInputValidation: true);
            w.WriteString("report_data", Convert.ToHexStringLower(reportData.AsSpan(0, 32)));
            w.WriteStartObject("source_provenance");
            w.WriteNull("repo_url");
            w.WriteNull("repo_commit");
            w.WriteNull("image_digest");
            w.WriteNull("image_provenance");
            w.WriteEndObject();
            w.WriteStartObject("evidence");
            w.WriteString("quote", Convert.ToHexStringLower(quote.Quote));
            w.WriteString("quote_report_data", Convert.ToHexStringLower(reportData));
            w.WritePropertyName("event_log");
            WriteJsonOrString(w, quote.EventLog);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartObject("service_capabilities");
            w.WriteStartArray("supported_e2ee_versions");
            w.WriteStringValue("2");
            w.WriteEndArray();
            w.WriteString("serving", "direct");
            w.WriteEndObject();
            w.WriteString("request_nonce", nonceText);
            WriteReport(w, receiptKey, GatewaySigningKeys.Ed25519, gpuNonce, reportData, quote, info, nvidia, gpuUnavailable, writeNonce: false);
            w.WriteEndObject();
        }

        metrics.Attested(Stopwatch.GetElapsedTime(started));
        return (ReportError.None, buffer.ToArray());
    }
}
