using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Protocol;
using PrivateMl.Agent.Runtime;

namespace PrivateMl.Agent.Hosting;

/// <summary>
/// The one terminal handler of every listener: routes a pRPC path to a method (dstack.md §2.1, §3.1), reads the
/// bounded body, and writes the response bytes with an explicit Content-Length (never chunked). Refusals are 4xx
/// with <c>{"error": …}</c> and happen before anything is changed.
/// </summary>
internal sealed class AgentRequestHandler(AgentRuntime runtime, GuestApi api, AgentOptions options, ILogger<AgentRequestHandler> logger)
{
    public const string SurfaceItem = "privateml.agent.surface";

    private static readonly HashSet<string> DstackMethods =
        ["GetQuote", "GetKey", "GetTlsKey", "Info", "EmitEvent", "Sign", "Verify", "Attest", "Version"];

    private static readonly HashSet<string> TappdMethods =
        ["TdxQuote", "RawQuote", "DeriveKey", "DeriveK256Key", "Info", "Version"];

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        int status;
        byte[] body;
        try
        {
            var (method, tappd) = Route(path, SurfaceOf(context));
            if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsPost(request.Method))
            {
                context.Response.Headers.Allow = "GET, POST";
                throw new RpcException(405, $"method {request.Method} is not allowed; use POST (or GET with a query string)");
            }

            var args = HttpMethods.IsGet(request.Method) ? RpcArgs.FromQuery(request.Query) : RpcArgs.FromBody(await ReadBodyAsync(context));
            await runtime.EnsureBootedAsync();
            body = await InvokeAsync(method, tappd, args, context.RequestAborted);
            status = 200;
            AgentLog.Request(logger, request.Method, path, status);
        }
        catch (RpcException e)
        {
            status = e.StatusCode;
            body = RpcJson.Error(e.Message);
            AgentLog.Rejected(logger, request.Method, path, status, e.Message);
        }
        catch (BadHttpRequestException e)
        {
            status = e.StatusCode is >= 400 and < 500 ? e.StatusCode : 400;
            body = RpcJson.Error(e.Message);
            AgentLog.Rejected(logger, request.Method, path, status, e.Message);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e)
        {
            status = 500;
            body = RpcJson.Error($"internal error: {e.GetType().Name}: {e.Message}");
            AgentLog.Failed(logger, path, e);
        }

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, context.RequestAborted);
    }

    internal static (string Method, bool Tappd) Route(string path, ApiSurface surface)
    {
        if (surface.HasFlag(ApiSurface.Tappd) && path.StartsWith("/prpc/", StringComparison.Ordinal))
        {
            var name = path["/prpc/".Length..];
            if (name.StartsWith("Tappd.", StringComparison.Ordinal))
            {
                name = name["Tappd.".Length..];
            }

            if (TappdMethods.Contains(name))
            {
                return (name, true);
            }
        }
        else if (path.Length > 1 && path[0] == '/' && path.IndexOf('/', 1) < 0)
        {
            var name = path[1..];
            if (surface.HasFlag(ApiSurface.Dstack) && DstackMethods.Contains(name))
            {
                return (name, false);
            }

            // The npm SDK's TappdClient inherits info()/version() from DstackClient, which post to /Info and /Version.
            if (surface == ApiSurface.Tappd && name is "Info" or "Version")
            {
                return (name, true);
            }
        }

        throw new RpcException(404, $"no such method: {path}");
    }

    private static ApiSurface SurfaceOf(HttpContext context) =>
        context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(SurfaceItem, out var value) == true && value is ApiSurface surface
            ? surface
            : ApiSurface.Dstack;

    private Task<byte[]> InvokeAsync(string method, bool tappd, RpcArgs args, CancellationToken ct)
    {
        if (tappd)
        {
            return method switch
            {
                "TdxQuote" => api.TdxQuoteAsync(args, raw: false, ct),
                "RawQuote" => api.TdxQuoteAsync(args, raw: true, ct),
                "DeriveKey" => api.DeriveKeyAsync(args, ct),
                "DeriveK256Key" => api.DeriveK256KeyAsync(args),
                "Info" => api.InfoAsync(ct),
                _ => api.VersionAsync(),
            };
        }

        return method switch
        {
            "GetQuote" => api.GetQuoteAsync(args, ct),
            "GetKey" => api.GetKeyAsync(args),
            "GetTlsKey" => api.GetTlsKeyAsync(args, ct),
            "Info" => api.InfoAsync(ct),
            "EmitEvent" => api.EmitEventAsync(args, ct),
            "Sign" => api.SignAsync(args),
            "Verify" => api.VerifyAsync(args),
            "Attest" => api.AttestAsync(args, ct),
            _ => api.VersionAsync(),
        };
    }

    private async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpContext context)
    {
        var request = context.Request;
        var limit = options.MaxRequestBodyBytes;
        if (request.ContentType is { } contentType
            && (contentType.Contains("protobuf", StringComparison.OrdinalIgnoreCase) || contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase))
            && !request.Query.ContainsKey("json"))
        {
            throw new RpcException(415, "protobuf-encoded requests are not supported; send JSON (Content-Type: application/json or ?json)");
        }

        if (request.ContentLength is { } declared && declared > limit)
        {
            if (OversizeBody.IsDrainable(declared, limit))
            {
                await OversizeBody.DrainAsync(request.Body, 0, limit, context.RequestAborted);
            }

            throw new RpcException(413, $"request body of {declared} bytes exceeds the {limit}-byte limit");
        }

        var buffer = new byte[Math.Min(request.ContentLength ?? 4096, limit) + 1];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (buffer.Length > limit)
                {
                    await OversizeBody.DrainAsync(request.Body, buffer, length, limit, context.RequestAborted);
                    throw new RpcException(413, $"request body exceeds the {limit}-byte limit");
                }

                Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, limit + 1L));
            }

            var read = await request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted);
            if (read == 0)
            {
                break;
            }

            length += read;
        }

        if (length > limit)
        {
            throw new RpcException(413, $"request body exceeds the {limit}-byte limit");
        }

        return buffer.AsMemory(0, length);
    }
}
