using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using PrivateMl.Agent.Client;
using PrivateMl.Gateway.Keyset;
using PrivateMl.Gateway.Operations;
using PrivateMl.Gateway.Proxy;
using PrivateMl.Gateway.Signing;
using PrivateMl.Tee.Gpu;

namespace PrivateMl.Gateway.Attestation;

/// <summary>Why a report could not be built (mapped to HTTP 400/404/503 by the endpoint).</summary>
internal enum ReportError
{
    None,
    InvalidNonce,
    InvalidSigningAlgo,
    UnknownSigningAddress,
    NoAgent,
}

/// <summary>
/// The seed proxy's attestation report: <c>report_data = signing address right-padded to 32 bytes ‖ nonce(32)</c>, a
/// fresh quote from the agent over it, GPU evidence over the same nonce (or a plain statement that there is none),
/// the event log (parsed JSON), the agent's info, and <c>all_attestations</c> holding this report.
/// </summary>
internal sealed partial class AttestationReportBuilder(
    SigningKeyHolder keys,
    GatewayKeysetHolder keyset,
    IDstackAgentClient? agent,
    IGpuEvidenceSource? gpu,
    GatewayMetrics metrics,
    RandomNumberGenerator random,
    PeerReports? peers = null)
{
    public const string GpuUnavailable = "GPU evidence is unavailable: no GPU evidence source is configured on this gateway";

    /// <summary>The payload JSON, or null and the reason in words (no source, or the source failed). Never faked.</summary>
    private async Task<(string? Payload, string? Unavailable)> GpuEvidenceAsync(byte[] nonce, CancellationToken cancellationToken)
    {
        if (gpu is null)
        {
            return (null, GpuUnavailable);
        }

        try
        {
            var payload = await gpu.GetEvidenceAsync(nonce, cancellationToken);
            return (payload.ToJson(), null);
        }
        catch (GpuDeviceException e)
        {
            return (null, $"GPU evidence is unavailable: {gpu.Name}: {e.Error}: {e.Message}");
        }
    }

    public static bool TryParseNonce(string? text, out byte[] nonce)
    {
        nonce = [];
        if (text is null || text.Length != 64)
        {
            return false;
        }

        try
        {
            nonce = Convert.FromHexString(text);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public async Task<(ReportError Error, byte[]? Json)> BuildAsync(string? nonceText, string? algoText, string? address, CancellationToken cancellationToken)
    {
        var algo = string.IsNullOrEmpty(algoText) ? GatewaySigningKeys.Ecdsa : algoText.ToLowerInvariant();
        if (algo is not (GatewaySigningKeys.Ecdsa or GatewaySigningKeys.Ed25519))
        {
            return (ReportError.InvalidSigningAlgo, null);
        }

        byte[] nonce;
        if (nonceText is null)
        {
            nonce = new byte[32];
            random.GetBytes(nonce);
        }
        else if (!TryParseNonce(nonceText, out nonce))
        {
            return (ReportError.InvalidNonce, null);
        }

        var k = keys.Keys;
        var signingAddress = k.AddressOf(algo);
        if (!string.IsNullOrEmpty(address) && !string.Equals(Strip0x(address), Strip0x(signingAddress), StringComparison.OrdinalIgnoreCase))
        {
            return (ReportError.UnknownSigningAddress, null);
        }

        if (agent is null)
        {
            return (ReportError.NoAgent, null);
        }

        var started = Stopwatch.GetTimestamp();
        var reportData = new byte[64];
        k.ReportDataPrefix(algo).CopyTo(reportData, 0);
        nonce.CopyTo(reportData, 32);
        var quoteTask = agent.GetQuoteAsync(reportData, cancellationToken);
        var infoTask = agent.InfoAsync(cancellationToken);
        var gpuTask = GpuEvidenceAsync(nonce, cancellationToken);
        var peerTask = peers is null ? Task.FromResult(PeerReports.Empty) : peers.FetchAsync(nonce, algo, cancellationToken);
        var quote = await quoteTask;
        var info = await infoTask;
        var (nvidia, gpuUnavailable) = await gpuTask;
        var (peerAttestations, peerErrors) = await peerTask;

        // The agent's answer arrives on a socket thread under serve's inline I/O; writing a report (quote, event log,
        // each GPU's evidence, every peer's whole report) is not work for it.
        await SocketThread.Leave();

        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            WriteReport(w, signingAddress, algo, nonce, reportData, quote, info, nvidia, gpuUnavailable);
            w.WritePropertyName("all_attestations");
            w.WriteStartArray();
            w.WriteStartObject();
            WriteReport(w, signingAddress, algo, nonce, reportData, quote, info, nvidia, gpuUnavailable);
            w.WriteEndObject();
            foreach (var peer in peerAttestations)
            {
                peer.WriteTo(w);
            }

            w.WriteEndArray();
            if (peerErrors.Count > 0)
            {
                w.WriteStartArray("peer_errors");
                foreach (var error in peerErrors)
                {
                    w.WriteStringValue(error);
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        }

        metrics.Attested(Stopwatch.GetElapsedTime(started));
        return (ReportError.None, buffer.ToArray());
    }

    private static void WriteReport(Utf8JsonWriter w, string address, string algo, byte[] nonce, byte[] reportData, DstackQuote quote, string info, string? nvidia, string? gpuUnavailable, bool writeNonce = true)
    {
        w.WriteString("signing_address", address);
        w.WriteString("signing_algo", algo);
        if (writeNonce)
        {
            w.WriteString("request_nonce", Convert.ToHexStringLower(nonce));
        }

        w.WriteString("intel_quote", Convert.ToHexStringLower(quote.Quote));
        if (nvidia is null)
        {
            w.WriteNull("nvidia_payload");
            w.WriteString("nvidia_payload_unavailable", gpuUnavailable ?? GpuUnavailable);
        }
        else
        {
            w.WriteString("nvidia_payload", nvidia);
        }

        w.WritePropertyName("event_log");
        WriteJsonOrString(w, quote.EventLog);
        w.WritePropertyName("info");
        WriteJsonOrString(w, info);
        w.WriteString("report_data", Convert.ToHexStringLower(reportData));
    }

    private static void WriteJsonOrString(Utf8JsonWriter w, string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            doc.RootElement.WriteTo(w);
        }
        catch (JsonException)
        {
            w.WriteStringValue(text);
        }
    }

    private static string Strip0x(string s) => s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? s[2..] : s;
}
