using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Client;
using PrivateMl.Gateway.Attestation;
using PrivateMl.Gateway.E2ee.Aci;
using PrivateMl.Gateway.E2ee.Ehbp;
using PrivateMl.Gateway.Operations;
using PrivateMl.Gateway.Proxy;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Signing;
using PrivateMl.Inference;

namespace PrivateMl.Gateway;

/// <summary>The gateway's HTTP surface (the seed vllm-proxy's routes plus receipts, health and readiness).</summary>
internal static class GatewayEndpoints
{
    public static void Map(WebApplication app)
    {
        var options = app.Services.GetRequiredService<GatewayOptions>();
        var auth = new BearerTokenAuth(options.Tokens);
        var metrics = app.Services.GetRequiredService<GatewayMetrics>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PrivateMl.Gateway");
        if (!auth.Enabled)
        {
            GatewayLog.NoTokens(logger);
        }

        // Runs on every request, the model's included: an authorized request goes on without an async frame of its own.
        app.Use(next => context =>
        {
            metrics.Request();
            var authorized = auth.TryAuthorize(context.Request.Headers.Authorization, out var credential);
            if (credential is not null)
            {
                context.Features.Set(credential);
            }

            var path = context.Request.Path.Value ?? "/";
            if (authorized || options.PublicPaths.Contains(path))
            {
                return next(context);
            }

            metrics.Rejected();
            GatewayLog.Rejected(logger, path, 401, "missing or unknown bearer token");
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return OpenAiErrors.WriteAsync(context, 401, "invalid or missing bearer token", "authentication_error", "invalid_api_key");
        });

        var aci = app.Services.GetRequiredService<AciE2eeMiddleware>();
        app.Use(next => context => aci.InvokeAsync(context, next));

        // After authentication (a 401 stays plaintext, as EHBP allows for errors without a nonce).
        var ehbp = app.Services.GetRequiredService<EhbpMiddleware>();
        app.Use(next => context => ehbp.InvokeAsync(context, next));

        // The model's two routes go straight to the relay, before routing matches a request against every endpoint (a
        // WebApplication matches first of all unless told where): on a stream's first byte that matching is code that
        // last ran one request ago. Other spellings that routing also accepts (another case, a trailing slash) still
        // reach the same relay through the endpoints below.
        var relay = app.Services.GetRequiredService<CompletionRelay>();
        app.Use(next => context =>
        {
            if (HttpMethods.IsPost(context.Request.Method))
            {
                switch (context.Request.Path.Value)
                {
                    case "/v1/chat/completions": return relay.HandleAsync(context, "/v1/chat/completions");
                    case "/v1/completions": return relay.HandleAsync(context, "/v1/completions");
                }
            }

            return next(context);
        });
        app.UseRouting();
        app.MapPost("/v1/chat/completions", context => relay.HandleAsync(context, "/v1/chat/completions"));
        app.MapPost("/v1/completions", context => relay.HandleAsync(context, "/v1/completions"));
        app.MapGet("/v1/models", PassThroughModelsAsync);
        app.MapGet("/v1/metrics", MetricsAsync);
        app.MapGet("/v1/signature/{chat_id}", SignatureAsync);
        app.MapGet("/v1/receipt/{chat_id}", ReceiptAsync);
        app.MapGet("/v1/attestation/report", ReportAsync);
        app.MapGet("/health", (HttpContext context) => Json(context, 200, "{\"status\":\"ok\"}"));
        app.MapGet("/ready", ReadyAsync);
    }

    /// <summary>503 with why (starting, stopping, upstream_unavailable) unless keys are ready and the model answers.</summary>
    private static async Task ReadyAsync(HttpContext context)
    {
        var services = context.RequestServices;
        var status = services.GetRequiredService<GatewayShutdown>().IsStopping ? "stopping"
            : !services.GetRequiredService<SigningKeyHolder>().IsReady ? "starting"
            : services.GetRequiredService<GatewayOptions>().ReadinessChecksUpstream && !await services.GetRequiredService<UpstreamReadiness>().IsUpAsync() ? "upstream_unavailable"
            : "ready";
        await Json(context, status == "ready" ? 200 : 503, $"{{\"status\":\"{status}\"}}");
    }

    private static Task Json(HttpContext context, int status, string json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(json, context.RequestAborted);
    }

    private static async Task PassThroughModelsAsync(HttpContext context)
    {
        var backend = context.RequestServices.GetRequiredService<IInferenceBackend>();
        try
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Get, "/v1/models", ReadOnlyMemory<byte>.Empty, null), context.RequestAborted);
            context.Response.StatusCode = response.StatusCode;
            context.Response.ContentType = response.ContentType ?? "application/json";
            await response.Body.CopyToAsync(context.Response.Body, context.RequestAborted);
        }
        catch (BackendUnavailableException)
        {
            await OpenAiErrors.WriteAsync(context, 502, "the inference backend is unavailable", "upstream_error", "upstream_unavailable");
        }
        catch (IOException)
        {
            context.Abort();
        }
    }

    /// <summary>Most bytes of the upstream's metrics relayed; more are cut at the last whole line before the bound.</summary>
    internal const int MaxUpstreamMetricsBytes = 4 * 1024 * 1024;

    private static async Task MetricsAsync(HttpContext context)
    {
        var text = new StringBuilder();
        var backend = context.RequestServices.GetRequiredService<IInferenceBackend>();
        try
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Get, "/metrics", ReadOnlyMemory<byte>.Empty, null), context.RequestAborted);
            if (response.StatusCode == 200)
            {
                // Up to 4 MiB of text to read and copy: not work for a socket thread.
                await SocketThread.Leave();
                AppendUpstreamMetrics(text, await ReadBoundedAsync(response.Body, MaxUpstreamMetricsBytes, context.RequestAborted));
            }
        }
        catch (Exception e) when (e is BackendUnavailableException or IOException or HttpRequestException)
        {
            text.Append("# upstream metrics unavailable\n");
        }

        context.RequestServices.GetRequiredService<PrometheusTextExporter>().WriteTo(text);
        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await context.Response.WriteAsync(text.ToString(), context.RequestAborted);
    }

    /// <summary>The body's first bytes, at most <paramref name="limit"/> + 1 (so that a longer body shows as longer); never more is read.</summary>
    private static async Task<ArraySegment<byte>> ReadBoundedAsync(Stream body, int limit, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while (buffer.Length <= limit && (read = await body.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, limit + 1 - buffer.Length)), cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
        }

        return new ArraySegment<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Appends the upstream's metrics, newline-terminated; a body over the bound is cut after its last whole line within it, and says so.</summary>
    internal static void AppendUpstreamMetrics(StringBuilder text, ReadOnlySpan<byte> upstream)
    {
        var truncated = upstream.Length > MaxUpstreamMetricsBytes;
        if (truncated)
        {
            upstream = upstream[..(upstream[..MaxUpstreamMetricsBytes].LastIndexOf((byte)'\n') + 1)];
        }

        text.Append(Encoding.UTF8.GetString(upstream));
        if (text.Length > 0 && text[^1] != '\n')
        {
            text.Append('\n');
        }

        if (truncated)
        {
            text.Append($"# upstream metrics cut at {MaxUpstreamMetricsBytes} bytes\n");
        }
    }

    private static async Task SignatureAsync(HttpContext context, string chat_id)
    {
        var algo = context.Request.Query["signing_algo"].ToString();
        algo = algo.Length == 0 ? GatewaySigningKeys.Ecdsa : algo.ToLowerInvariant();
        if (algo is not (GatewaySigningKeys.Ecdsa or GatewaySigningKeys.Ed25519))
        {
            await OpenAiErrors.WriteAsync(context, 400, "signing_algo must be ecdsa or ed25519", "invalid_request_error", "invalid_signing_algo");
            return;
        }

        var record = await FindRecordAsync(context, chat_id);
        if (record is null)
        {
            await OpenAiErrors.WriteAsync(context, 404, "no signature for this id", "not_found", "not_found");
            return;
        }

        var buffer = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("text", record.Text);
            w.WriteString("signature", algo == GatewaySigningKeys.Ecdsa ? record.SignatureEcdsa : record.SignatureEd25519);
            w.WriteString("signing_address", algo == GatewaySigningKeys.Ecdsa ? record.SigningAddressEcdsa : record.SigningAddressEd25519);
            w.WriteString("signing_algo", algo);
            w.WriteEndObject();
        }

        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.ToArray(), context.RequestAborted);
    }

    private static async Task ReceiptAsync(HttpContext context, string chat_id)
    {
        var record = await FindRecordAsync(context, chat_id);
        if (record is null)
        {
            await OpenAiErrors.WriteAsync(context, 404, "no receipt for this id", "not_found", "not_found");
            return;
        }

        await Json(context, 200, record.Receipt);
    }

    /// <summary>
    /// The stored record for <paramref name="id"/> if this caller may read it. A record made under another bearer
    /// token is answered exactly like a missing one (404), so its existence is not revealed.
    /// </summary>
    private static async Task<SignatureRecord?> FindRecordAsync(HttpContext context, string id)
    {
        var record = await context.RequestServices.GetRequiredService<ISignatureStore>().GetAsync(id, context.RequestAborted);
        return record is not null && record.IsReadableBy(context.Features.Get<CallerCredential>()?.Hash) ? record : null;
    }

    private static async Task ReportAsync(HttpContext context)
    {
        var builder = context.RequestServices.GetRequiredService<AttestationReportBuilder>();
        var query = context.Request.Query;
        var nonce = query.ContainsKey("nonce") ? query["nonce"].ToString() : null;
        var format = query["format"].ToString();
        if (format.Length > 0 && format is not ("aci" or "seed"))
        {
            await OpenAiErrors.WriteAsync(context, 400, "format must be seed (the default) or aci", "invalid_request_error", "invalid_format");
            return;
        }

        try
        {
            var (error, json) = format == "aci"
                ? await builder.BuildAciAsync(nonce, context.RequestAborted)
                : await builder.BuildAsync(nonce, query["signing_algo"].ToString(), query["signing_address"].ToString(), context.RequestAborted);
            switch (error)
            {
                case ReportError.InvalidNonce:
                    await OpenAiErrors.WriteAsync(context, 400, format == "aci" ? "nonce must be 64 lower-case hex characters (32 bytes)" : "nonce must be 64 hex characters (32 bytes)", "invalid_request_error", "invalid_nonce");
                    return;
                case ReportError.InvalidSigningAlgo:
                    await OpenAiErrors.WriteAsync(context, 400, "signing_algo must be ecdsa or ed25519", "invalid_request_error", "invalid_signing_algo");
                    return;
                case ReportError.UnknownSigningAddress:
                    await OpenAiErrors.WriteAsync(context, 404, "this gateway does not sign with that address", "not_found", "signing_address_not_found");
                    return;
                case ReportError.NoAgent:
                    await OpenAiErrors.WriteAsync(context, 503, "no guest agent is configured; attestation is unavailable", "server_error", "attestation_unavailable");
                    return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(json!, context.RequestAborted);
        }
        catch (DstackAgentException e)
        {
            GatewayLog.AttestationFailed(context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("PrivateMl.Gateway"), e.Message);
            await OpenAiErrors.WriteAsync(context, 503, "the guest agent could not produce a quote", "server_error", "attestation_unavailable");
        }
    }
}
