using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Collateral.Nvidia;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Nvidia;

public enum RimServiceFault
{
    None,
    ServerError,
    MalformedJson,
    Oversized,
    WrongId,
    RimNotBase64,
}

/// <summary>
/// A real HTTP server on 127.0.0.1 answering <c>GET /v1/rim/{id}</c> the way NVIDIA's RIM service does:
/// <c>{"id","rim","sha256","request_id","rim_format"}</c> with <c>rim</c> the base64 of the file's bytes; 404 for unknown IDs.
/// </summary>
internal sealed class FakeRimService : IAsyncDisposable
{
    private const string Route = "/v1/rim/";

    private readonly WebApplication app;
    private readonly IReadOnlyDictionary<string, byte[]> rims;

    private FakeRimService(WebApplication app, IReadOnlyDictionary<string, byte[]> rims)
    {
        this.app = app;
        this.rims = rims;
    }

    public Uri BaseAddress { get; private set; } = null!;

    public RimServiceFault Fault { get; set; }

    /// <summary>Paths of every request, in arrival order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    public static async Task<FakeRimService> StartAsync(IReadOnlyDictionary<string, byte[]> rims)
    {
        FakeRimService? service = null;
        var app = await LoopbackServer.ServeAsync(context => service!.HandleAsync(context), TestContext.Current.CancellationToken);
        service = new FakeRimService(app, rims) { BaseAddress = app.BaseAddress() };
        return service;
    }

    public async ValueTask DisposeAsync() => await app.DisposeAsync();

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? string.Empty;
        Requests.Enqueue(path);
        var id = path.StartsWith(Route, StringComparison.Ordinal) ? path[Route.Length..] : null;
        if (id is null || !rims.TryGetValue(id, out var rim))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        switch (Fault)
        {
            case RimServiceFault.ServerError:
                context.Response.StatusCode = StatusCodes.Status500InternalServerError;
                return;
            case RimServiceFault.MalformedJson:
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("{\"id\":\"" + id + "\",\"rim\":", context.RequestAborted);
                return;
            case RimServiceFault.Oversized:
                context.Response.ContentType = "application/json";
                await context.Response.Body.WriteAsync(new byte[RimServiceSource.DefaultMaxResponseBytes + 1], context.RequestAborted);
                return;
        }

        var body = new Dictionary<string, string>
        {
            ["id"] = Fault == RimServiceFault.WrongId ? id + "X" : id,
            ["rim"] = Fault == RimServiceFault.RimNotBase64 ? "<not base64>" : Convert.ToBase64String(rim),
            ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(rim)),
            ["request_id"] = Guid.NewGuid().ToString(),
            ["rim_format"] = "SWID",
        };
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(body), context.RequestAborted);
    }
}
