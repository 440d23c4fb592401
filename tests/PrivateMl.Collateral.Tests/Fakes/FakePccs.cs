using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Fakes;

public enum PccsRoute
{
    PckCrl,
    RootCaCrl,
    TcbInfo,
    QeIdentity,
}

public enum PccsFault
{
    None,
    NotFound,
    ServerError,
    ServiceUnavailable,
    HtmlInsteadOfJson,
    TruncatedBody,
    IssuerChainHeaderMissing,
    AbortMidBody,
    WrongFmspc,
    Oversized,
    DuplicateSignedMember,
    SignatureNotHex,
    CrlGarbage,
}

/// <summary>
/// A real HTTP server on 127.0.0.1 that answers the PCS v4 routes the way a PCCS does, from one dcap-qvl collateral
/// bundle split back into its PCS responses: <c>{"tcbInfo":…,"signature":"hex"}</c> bodies whose signed object is the
/// bundle's exact text, URL-encoded issuer-chain headers, the PCK CRL as DER (<c>encoding=der</c>) or PEM, the root
/// CA CRL as hex text on <c>/sgx/certification/v4/rootcacrl</c> and as DER on <c>/IntelSGXRootCA.der</c>.
/// Faults can be injected per route, for the first N requests or for all.
/// </summary>
internal sealed class FakePccs : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly DcapCollateral collateral;
    private readonly string tee;
    private readonly string fmspc;
    private readonly string ca;
    private readonly ConcurrentDictionary<PccsRoute, (PccsFault Fault, int Remaining)> faults = new();

    private FakePccs(WebApplication app, DcapCollateral collateral)
    {
        this.app = app;
        this.collateral = collateral;
        using var tcb = JsonDocument.Parse(collateral.TcbInfo);
        tee = tcb.RootElement.GetProperty("id").GetString()!.ToLowerInvariant();
        fmspc = tcb.RootElement.GetProperty("fmspc").GetString()!;
        ca = collateral.PckCrlIssuerChain.Length > 0 && CollateralFacts.CaOfChain(collateral.PckCrlIssuerChain) == PckCaType.Platform ? "platform" : "processor";
    }

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Path and query of every request, in arrival order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>When true, the PCK CRL is served as PEM whatever <c>encoding</c> says (Intel PCS without encoding=der).</summary>
    public bool PckCrlAsPem { get; set; }

    public static async Task<FakePccs> StartAsync(DcapCollateral collateral)
    {
        FakePccs? pccs = null;
        var app = await LoopbackServer.ServeAsync(context => pccs!.HandleAsync(context), TestContext.Current.CancellationToken);
        pccs = new FakePccs(app, collateral) { BaseAddress = app.BaseAddress() };
        return pccs;
    }

    /// <summary>Inject <paramref name="fault"/> on <paramref name="route"/> for the next <paramref name="times"/> requests (all when null).</summary>
    public void Inject(PccsRoute route, PccsFault fault, int? times = null) => faults[route] = (fault, times ?? int.MaxValue);

    public int CountOf(PccsRoute route) => Requests.Count(r => RouteOf(r) == route);

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    private static PccsRoute? RouteOf(string pathAndQuery)
    {
        var path = pathAndQuery.Split('?')[0];
        return path switch
        {
            "/sgx/certification/v4/pckcrl" => PccsRoute.PckCrl,
            "/sgx/certification/v4/rootcacrl" or "/IntelSGXRootCA.der" => PccsRoute.RootCaCrl,
            "/sgx/certification/v4/tcb" or "/tdx/certification/v4/tcb" => PccsRoute.TcbInfo,
            "/sgx/certification/v4/qe/identity" or "/tdx/certification/v4/qe/identity" => PccsRoute.QeIdentity,
            _ => null,
        };
    }

    private PccsFault TakeFault(PccsRoute route)
    {
        while (faults.TryGetValue(route, out var entry))
        {
            if (entry.Remaining <= 0)
            {
                return PccsFault.None;
            }

            if (faults.TryUpdate(route, (entry.Fault, entry.Remaining == int.MaxValue ? int.MaxValue : entry.Remaining - 1), entry))
            {
                return entry.Fault;
            }
        }

        return PccsFault.None;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var pathAndQuery = request.Path + request.QueryString.ToString();
        Requests.Enqueue(pathAndQuery);
        var route = RouteOf(pathAndQuery);
        if (route is null)
        {
            context.Response.StatusCode = 404;
            return;
        }

        var fault = TakeFault(route.Value);
        switch (fault)
        {
            case PccsFault.NotFound:
                context.Response.StatusCode = 404;
                return;
            case PccsFault.ServerError:
                context.Response.StatusCode = 500;
                return;
            case PccsFault.ServiceUnavailable:
                context.Response.StatusCode = 503;
                context.Response.Headers["Error-Message"] = "PCCS is warming up";
                return;
            case PccsFault.HtmlInsteadOfJson:
                context.Response.ContentType = "text/html";
                await context.Response.WriteAsync("<html><body>Captive portal</body></html>");
                return;
        }

        var path = request.Path.Value!;
        string? body = null;
        byte[]? bytes = null;
        switch (route.Value)
        {
            case PccsRoute.PckCrl:
                if (request.Query["ca"] != ca)
                {
                    context.Response.StatusCode = 404;
                    return;
                }

                context.Response.Headers["SGX-PCK-CRL-Issuer-Chain"] = Uri.EscapeDataString(collateral.PckCrlIssuerChain);
                if (PckCrlAsPem || request.Query["encoding"] != "der")
                {
                    body = new string(System.Security.Cryptography.PemEncoding.Write("X509 CRL", collateral.PckCrl)) + "\n";
                }
                else
                {
                    bytes = collateral.PckCrl;
                }

                break;
            case PccsRoute.RootCaCrl:
                if (path.EndsWith(".der", StringComparison.Ordinal))
                {
                    bytes = collateral.RootCaCrl;
                }
                else
                {
                    body = Convert.ToHexStringLower(collateral.RootCaCrl);
                }

                break;
            case PccsRoute.TcbInfo:
                if (!path.StartsWith("/" + tee + "/", StringComparison.Ordinal) || !string.Equals(request.Query["fmspc"], fmspc, StringComparison.OrdinalIgnoreCase))
                {
                    context.Response.StatusCode = 404;
                    return;
                }

                context.Response.Headers["TCB-Info-Issuer-Chain"] = Uri.EscapeDataString(collateral.TcbInfoIssuerChain);
                var tcbInfo = fault == PccsFault.WrongFmspc ? collateral.TcbInfo.Replace(fmspc, "00606A000000", StringComparison.Ordinal) : collateral.TcbInfo;
                body = SignedBody("tcbInfo", tcbInfo, collateral.TcbInfoSignature, fault);
                break;
            case PccsRoute.QeIdentity:
                if (!path.StartsWith("/" + tee + "/", StringComparison.Ordinal))
                {
                    context.Response.StatusCode = 404;
                    return;
                }

                context.Response.Headers["SGX-Enclave-Identity-Issuer-Chain"] = Uri.EscapeDataString(collateral.QeIdentityIssuerChain);
                body = SignedBody("enclaveIdentity", collateral.QeIdentity, collateral.QeIdentitySignature, fault);
                break;
        }

        bytes ??= Encoding.UTF8.GetBytes(body!);
        switch (fault)
        {
            case PccsFault.IssuerChainHeaderMissing:
                foreach (var name in context.Response.Headers.Keys.Where(k => k.EndsWith("Issuer-Chain", StringComparison.Ordinal)).ToList())
                {
                    context.Response.Headers.Remove(name);
                }

                break;
            case PccsFault.TruncatedBody:
                bytes = bytes[..(bytes.Length / 2)];
                break;
            case PccsFault.Oversized:
                bytes = [.. bytes, .. new byte[5 * 1024 * 1024]];
                break;
            case PccsFault.CrlGarbage:
                bytes = Encoding.ASCII.GetBytes("this is not a CRL");
                break;
            case PccsFault.AbortMidBody:
                context.Response.ContentLength = bytes.Length;
                await context.Response.Body.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
                await context.Response.Body.FlushAsync();
                context.Abort();
                return;
        }

        context.Response.ContentLength = bytes.Length;
        await context.Response.Body.WriteAsync(bytes);
    }

    private static string SignedBody(string member, string signedText, byte[] signature, PccsFault fault)
    {
        var hex = fault == PccsFault.SignatureNotHex ? "zz" + Convert.ToHexStringLower(signature)[2..] : Convert.ToHexStringLower(signature);
        var duplicate = fault == PccsFault.DuplicateSignedMember ? $"\"{member}\":{{\"id\":\"TDX\"}}," : string.Empty;
        return $"{{{duplicate}\"{member}\":{signedText},\"signature\":\"{hex}\"}}";
    }
}
