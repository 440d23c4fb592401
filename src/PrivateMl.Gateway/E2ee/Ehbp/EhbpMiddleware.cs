using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.E2ee.Hpke;
using PrivateMl.Gateway.Operations;

namespace PrivateMl.Gateway.E2ee.Ehbp;

/// <summary>
/// EHBP on the gateway (Tinfoil SPEC §4–§5). Serves <c>GET /.well-known/hpke-keys</c>. A completion request with an
/// <c>Ehbp-Encapsulated-Key</c> header is decapsulated here and handed to the completion relay as an
/// <see cref="IE2eeExchange"/>: the relay reads and signs the exact ciphertext, forwards what
/// <see cref="EhbpRelayExchange.OpenRequestAsync"/> opened, and seals the model's answer frame by frame as it arrives
/// under a fresh <c>Ehbp-Response-Nonce</c>, signing the sealed bytes. Errors: malformed header, framing or a later
/// chunk → 400; a key the gateway cannot use (decapsulation, or the first chunk failing under the selected key) →
/// 422 <c>urn:ietf:params:ehbp:error:key-config</c>; the bodies give no finer cause (§5.4.4). Once the key is accepted
/// here, every later error — the model's, or the relay's own 429/413/502 — is sealed like an answer (§5.1: servers
/// encrypt errors too whenever a receiver context was established). EHBP on any other route
/// is refused (400), so a request that asked for encryption is never answered in plaintext with a 2xx. Requests
/// without the header pass through untouched (bodyless requests, §7.4).
/// </summary>
internal sealed class EhbpMiddleware(EhbpKeyHolder keys, RandomNumberGenerator random, ILogger<EhbpMiddleware> logger)
{
    /// <summary>A request without the EHBP header goes on without an async frame of this middleware's own.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Request.Path.Equals(EhbpProtocol.KeysPath, StringComparison.Ordinal))
        {
            return ServeKeysAsync(context);
        }

        var headers = context.Request.Headers[EhbpProtocol.EncapsulatedKeyHeader];
        return headers.Count == 0 ? next(context) : AcceptAsync(context, next, headers);
    }

    private async Task AcceptAsync(HttpContext context, RequestDelegate next, StringValues headers)
    {
        var key = keys.Key;
        if (key is null)
        {
            await Refusal(503, "about:blank", "the encryption key is not ready", "not_ready").WriteAsync(context);
            return;
        }

        var path = context.Request.Path.Value;
        if (headers.Count != 1 || !HttpMethods.IsPost(context.Request.Method) || path is not ("/v1/chat/completions" or "/v1/completions"))
        {
            await RefuseAsync(context, Refusal(400, "header or route"));
            return;
        }

        EhbpServerExchange exchange;
        try
        {
            exchange = EhbpServerExchange.Accept(headers[0], key.PrivateKey);
        }
        catch (AttestationException e)
        {
            await RefuseAsync(context, Refusal(e.Code == ErrorCode.EhbpHeaderMalformed ? 400 : 422, e.Code.ToString()));
            return;
        }

        var relayExchange = new EhbpRelayExchange(exchange, random);
        context.Response.RegisterForDispose(relayExchange);
        context.Features.Set<IE2eeExchange>(relayExchange);
        await next(context);
    }

    private async Task RefuseAsync(HttpContext context, E2eeRefusedException refusal)
    {
        GatewayLog.Rejected(logger, context.Request.Path.Value ?? "/", refusal.Status, "EHBP: " + refusal.Message);
        await refusal.WriteAsync(context);
    }

    /// <summary>The answer to a refused request; <paramref name="cause"/> goes to the log only (SPEC §5.4.4).</summary>
    internal static E2eeRefusedException Refusal(int status, string cause) => status == 422
        ? Refusal(422, EhbpProtocol.KeyConfigProblemType, "the request was not encrypted to a key this server holds", cause)
        : Refusal(status, "about:blank", "the encrypted request could not be processed", cause);

    private static E2eeRefusedException Refusal(int status, string type, string title, string cause) =>
        new(status, EhbpProtocol.ProblemMediaType, Encoding.UTF8.GetBytes($"{{\"type\":\"{type}\",\"title\":\"{title}\",\"status\":{status}}}"), type, cause);

    private async Task ServeKeysAsync(HttpContext context)
    {
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.StatusCode = 405;
            return;
        }

        if (keys.Key is not { } key)
        {
            await Refusal(503, "about:blank", "the encryption key is not ready", "not_ready").WriteAsync(context);
            return;
        }

        context.Response.ContentType = EhbpProtocol.KeysMediaType;
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = key.KeyConfig.Length;
        await context.Response.Body.WriteAsync(key.KeyConfig, context.RequestAborted);
    }
}

/// <summary>One EHBP exchange as the completion relay drives it (see <see cref="IE2eeExchange"/>).</summary>
internal sealed class EhbpRelayExchange(EhbpServerExchange exchange, RandomNumberGenerator random) : IE2eeExchange, IDisposable
{
    /// <summary>Response plaintext per frame at most (a larger upstream read becomes several frames).</summary>
    internal const int MaxResponseChunkBytes = 64 * 1024;

    private string? _nonceHeader;
    private EhbpChunkCipher? _response;

    public string Name => "ehbp";

    public ValueTask<byte[]> OpenRequestAsync(byte[] wireBody, string path, CancellationToken cancellationToken) =>
        ValueTask.FromResult(OpenRequest(wireBody));

    private byte[] OpenRequest(ReadOnlySpan<byte> wireBody)
    {
        if (wireBody.IsEmpty)
        {
            // SPEC §7.4: with no body nothing authenticates the encapsulated key; refuse rather than answer.
            throw EhbpMiddleware.Refusal(400, "encapsulated key without a body");
        }

        try
        {
            // The relay already bounded the wire body; the plaintext is never larger.
            return exchange.OpenBody(wireBody, wireBody.Length);
        }
        catch (AttestationException e)
        {
            var keyProblem = e.Code is ErrorCode.EhbpChunkAuthenticationFailed or ErrorCode.EhbpChunkOutOfOrder && exchange.Request.Sequence == 0;
            throw EhbpMiddleware.Refusal(keyProblem ? 422 : 400, e.Code.ToString());
        }
    }

    public void ApplyResponseHeaders(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        EnsureResponse();
        response.Headers[EhbpProtocol.ResponseNonceHeader] = _nonceHeader;
        response.ContentLength = null;
    }

    public IResponseBodyTransform CreateResponseTransform(bool eventStream)
    {
        EnsureResponse();
        return new Sealer(_response!);
    }

    public byte[] SealError(byte[] errorBody, HttpResponse response, bool fromModel)
    {
        var transform = CreateResponseTransform(eventStream: false);
        var sealedBody = new ArrayBufferWriter<byte>(errorBody.Length + 64);
        transform.Transform(errorBody, sealedBody);
        transform.Complete(sealedBody);
        ApplyResponseHeaders(response);
        return sealedBody.WrittenSpan.ToArray();
    }

    private void EnsureResponse()
    {
        if (_response is null)
        {
            (_nonceHeader, _response) = exchange.CreateResponse(random);
        }
    }

    public void Dispose()
    {
        _response?.Dispose();
        exchange.Dispose();
    }

    /// <summary>Seals each piece of the model's answer into frames at once: a stream is never held back or buffered whole.</summary>
    private sealed class Sealer(EhbpChunkCipher cipher) : IResponseBodyTransform
    {
        public void Transform(ReadOnlySpan<byte> upstream, IBufferWriter<byte> output)
        {
            while (!upstream.IsEmpty)
            {
                var chunk = upstream[..Math.Min(MaxResponseChunkBytes, upstream.Length)];
                var length = EhbpProtocol.FrameHeaderLength + chunk.Length + HpkeSuite.TagLength;
                cipher.SealFrame(chunk, output.GetSpan(length)[..length]);
                output.Advance(length);
                upstream = upstream[chunk.Length..];
            }
        }

        public void Complete(IBufferWriter<byte> output)
        {
        }
    }
}
