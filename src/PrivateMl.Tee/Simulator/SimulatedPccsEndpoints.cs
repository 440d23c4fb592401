using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// PCCS-style HTTP routes that serve simulated collateral the way Intel PCS v4 and a PCCS do (research/tdx-dcap.md §4):
/// TCB info and QE identity as <c>{"tcbInfo"|"enclaveIdentity":…,"signature":"…"}</c> with URL-encoded PEM issuer-chain
/// headers, PCK CRL (hex text, or DER with <c>encoding=der</c>) with <c>SGX-PCK-CRL-Issuer-Chain</c>, and the root CA CRL.
/// </summary>
public static class SimulatedPccsEndpoints
{
    public const string TcbInfoIssuerChainHeader = "TCB-Info-Issuer-Chain";
    public const string PckCrlIssuerChainHeader = "SGX-PCK-CRL-Issuer-Chain";
    public const string EnclaveIdentityIssuerChainHeader = "SGX-Enclave-Identity-Issuer-Chain";

    /// <summary>Maps the routes; <paramref name="content"/> is called per request (cache inside it if needed).</summary>
    public static RouteGroupBuilder MapSimulatedPccs(this IEndpointRouteBuilder endpoints, Func<SimulatedPccsContent> content, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(content);
        var group = endpoints.MapGroup(prefix);

        group.MapGet("/sgx/certification/v4/pckcrl", (RequestDelegate)(context => PckCrl(context, content())));
        group.MapGet("/sgx/certification/v4/rootcacrl", (RequestDelegate)(context => RootCaCrl(context, content(), derByDefault: false)));
        group.MapGet("/SimulatedSGXRootCA.der", (RequestDelegate)(context => RootCaCrl(context, content(), derByDefault: true)));
        group.MapGet("/tdx/certification/v4/tcb", (RequestDelegate)(context => TcbInfo(context, content(), sgx: false)));
        group.MapGet("/sgx/certification/v4/tcb", (RequestDelegate)(context => TcbInfo(context, content(), sgx: true)));
        group.MapGet("/tdx/certification/v4/qe/identity", (RequestDelegate)(context => QeIdentity(context, content(), sgx: false)));
        group.MapGet("/sgx/certification/v4/qe/identity", (RequestDelegate)(context => QeIdentity(context, content(), sgx: true)));
        return group;
    }

    /// <summary>
    /// Maps the routes over <paramref name="platform"/>'s collateral, issued from <paramref name="timeProvider"/> and
    /// re-issued once half of its validity has passed.
    /// </summary>
    public static RouteGroupBuilder MapSimulatedPccs(
        this IEndpointRouteBuilder endpoints,
        SimulatedTdxPlatform platform,
        TimeProvider timeProvider,
        SimulatedCollateralOptions? options = null,
        string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(timeProvider);
        var cache = new ContentCache(platform, timeProvider, options ?? SimulatedCollateralOptions.Default);
        return endpoints.MapSimulatedPccs(cache.Get, prefix);
    }

    private static Task PckCrl(HttpContext context, SimulatedPccsContent content)
    {
        var ca = context.Request.Query["ca"].ToString().ToLowerInvariant();
        if (ca is not ("platform" or "processor"))
        {
            return Error(context, StatusCodes.Status400BadRequest, "ca must be 'platform' or 'processor'");
        }

        if (ca != (content.CaKind == PckCaKind.Platform ? "platform" : "processor"))
        {
            return Error(context, StatusCodes.Status404NotFound, $"this simulated PCCS has no {ca} CA");
        }

        context.Response.Headers[PckCrlIssuerChainHeader] = Uri.EscapeDataString(content.Collateral.PckCrlIssuerChain);
        return Crl(context, content.Collateral.PckCrl, derByDefault: false);
    }

    private static Task RootCaCrl(HttpContext context, SimulatedPccsContent content, bool derByDefault) =>
        Crl(context, content.Collateral.RootCaCrl, derByDefault);

    private static Task Crl(HttpContext context, byte[] der, bool derByDefault)
    {
        var encoding = context.Request.Query["encoding"].ToString();
        if (derByDefault || string.Equals(encoding, "der", StringComparison.OrdinalIgnoreCase))
        {
            context.Response.ContentType = "application/pkix-crl";
            context.Response.ContentLength = der.Length;
            return context.Response.Body.WriteAsync(der, context.RequestAborted).AsTask();
        }

        // PCCS answers hex text unless DER is asked for.
        return Text(context, "text/plain", Convert.ToHexStringLower(der));
    }

    private static Task TcbInfo(HttpContext context, SimulatedPccsContent content, bool sgx)
    {
        var fmspc = context.Request.Query["fmspc"].ToString();
        if (fmspc.Length != 12 || !IsHex(fmspc))
        {
            return Error(context, StatusCodes.Status400BadRequest, "fmspc must be 12 hex digits");
        }

        if (!Convert.FromHexString(fmspc).AsSpan().SequenceEqual(content.Fmspc.Span))
        {
            return Error(context, StatusCodes.Status404NotFound, "unknown fmspc");
        }

        var item = sgx
            ? content.SgxTcbInfo
            : new SignedCollateralItem(content.Collateral.TcbInfo, content.Collateral.TcbInfoSignature, content.Collateral.TcbInfoIssuerChain);
        if (item is null)
        {
            return Error(context, StatusCodes.Status404NotFound, "no SGX TCB info");
        }

        context.Response.Headers[TcbInfoIssuerChainHeader] = Uri.EscapeDataString(item.IssuerChainPem);
        return Text(context, "application/json", Envelope("tcbInfo", item));
    }

    private static Task QeIdentity(HttpContext context, SimulatedPccsContent content, bool sgx)
    {
        var item = sgx
            ? content.SgxQeIdentity
            : new SignedCollateralItem(content.Collateral.QeIdentity, content.Collateral.QeIdentitySignature, content.Collateral.QeIdentityIssuerChain);
        if (item is null)
        {
            return Error(context, StatusCodes.Status404NotFound, "no SGX QE identity");
        }

        context.Response.Headers[EnclaveIdentityIssuerChainHeader] = Uri.EscapeDataString(item.IssuerChainPem);
        return Text(context, "application/json", Envelope("enclaveIdentity", item));
    }

    /// <summary>The PCS body: the signed JSON text inserted verbatim, so its bytes are exactly the signed ones.</summary>
    private static string Envelope(string name, SignedCollateralItem item) =>
        $"{{\"{name}\":{item.Json},\"signature\":\"{Convert.ToHexStringLower(item.Signature.Span)}\"}}";

    private static Task Text(HttpContext context, string contentType, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        context.Response.ContentType = contentType;
        context.Response.ContentLength = bytes.Length;
        return context.Response.Body.WriteAsync(bytes, context.RequestAborted).AsTask();
    }

    private static Task Error(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["Error-Message"] = message;
        return Text(context, "application/json", $"{{\"error\":\"{message}\"}}");
    }

    private static bool IsHex(string text) => text.All(Uri.IsHexDigit);

    private sealed class ContentCache(SimulatedTdxPlatform platform, TimeProvider timeProvider, SimulatedCollateralOptions options)
    {
        private readonly Lock _gate = new();
        private SimulatedPccsContent? _content;
        private DateTimeOffset _refreshAt;

        public SimulatedPccsContent Get()
        {
            var now = timeProvider.GetUtcNow();
            lock (_gate)
            {
                if (_content is null || now >= _refreshAt)
                {
                    _content = platform.CreatePccsContent(now, options);
                    _refreshAt = now + (options.Validity / 2);
                }

                return _content;
            }
        }
    }
}
