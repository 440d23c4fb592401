using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Keyset;
using PrivateMl.Gateway.Operations;
using PrivateMl.Gateway.Proxy;

namespace PrivateMl.Gateway.E2ee.Aci;

/// <summary>
/// ACI E2EE v2 on the gateway (e2ee-v2.md). Every response carries <c>X-ACI-Version</c> and
/// <c>X-ACI-Keyset-Digest</c>. A request with any E2EE signal header is either a valid v2 request on a supported
/// endpoint — then an <see cref="IE2eeExchange"/> is attached and the relay decrypts, forwards, and encrypts the answer —
/// or it is refused with the spec's code. It is never served as plaintext (no downgrade), and the legacy path
/// (<c>X-Signing-Algo</c>: no AAD, no replay protection) is not offered.
/// </summary>
internal sealed class AciE2eeMiddleware(GatewayKeysetHolder keysets, IAciReplayStore replay, TimeProvider time, RandomNumberGenerator random, GatewayMetrics metrics, ILogger<AciE2eeMiddleware> logger)
{
    internal IAciReplayStore Replay => replay;

    internal RandomNumberGenerator Random => random;

    /// <summary>
    /// A request without any E2EE signal — nearly all of them — goes on without an async frame or an allocation of
    /// this middleware's own: it runs on every request's path to the model.
    /// </summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (!keysets.IsReady)
        {
            return next(context);
        }

        var keyset = keysets.Keyset;
        context.Response.Headers[AciHeaders.AciVersion] = "aci/1";
        context.Response.Headers[AciHeaders.KeysetDigest] = keyset.Public.Digest;
        return HasSignal(context.Request.Headers) ? NegotiateAsync(context, next, keyset) : next(context);
    }

    private static bool HasSignal(IHeaderDictionary headers)
    {
        foreach (var name in AciHeaders.Signals)
        {
            if (headers.ContainsKey(name))
            {
                return true;
            }
        }

        return false;
    }

    private async Task NegotiateAsync(HttpContext context, RequestDelegate next, GatewayKeyset keyset)
    {
        var headers = context.Request.Headers;
        var path = context.Request.Path.Value ?? "/";
        try
        {
            if (!HttpMethods.IsPost(context.Request.Method) || !AciPayload.IsSupportedEndpoint(path))
            {
                throw new AciE2eeException(AciE2eeError.UnsupportedEndpoint, $"E2EE v2 is not defined for {context.Request.Method} {path}");
            }

            if (headers.ContainsKey("Ehbp-Encapsulated-Key"))
            {
                throw new AciE2eeException(AciE2eeError.InvalidVersion, "a request cannot use ACI E2EE and EHBP at once");
            }

            var validated = AciRequestHeaders.Validate(
                name => headers.TryGetValue(name, out var v) && v.Count > 0 ? (v.Count == 1 ? v[0] : string.Join(",", v.ToArray())) : null,
                keyset.Public,
                time.GetUtcNow());
            context.Features.Set<IE2eeExchange>(new AciExchange(this, keyset, validated));
        }
        catch (AciE2eeException e)
        {
            metrics.Rejected();
            GatewayLog.E2eeRefused(logger, path, e.Code);
            await Refusal(e).WriteAsync(context);
            return;
        }

        await next(context);
    }

    /// <summary>
    /// A model error on an E2EE request, typed: the status stays, the model's <c>error.type</c> is kept when it is a
    /// plain identifier, and its message (which may quote the decrypted prompt) is replaced. Sent in the clear, as
    /// ACI v2 encrypts only generated-content fields (e2ee-v2.md §5) and its reference relays errors as plain JSON.
    /// </summary>
    internal static byte[] ModelErrorBody(int status, ReadOnlySpan<byte> upstreamError)
    {
        string? type = null;
        try
        {
            var reader = new Utf8JsonReader(upstreamError);
            if (JsonNode.Parse(ref reader) is JsonObject { } root && root["error"] is JsonObject error
                && error["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String
                && t.GetValue<string>() is { Length: > 0 and <= 64 } text && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            {
                type = text;
            }
        }
        catch (JsonException)
        {
        }

        return OpenAiErrors.Body(
            $"the model answered HTTP {status}; its message is not relayed on an end-to-end encrypted request, as it may quote the prompt",
            type ?? (status is >= 500 ? "upstream_error" : "invalid_request_error"),
            AciE2eeError.ModelError.Code());
    }

    internal static E2eeRefusedException Refusal(AciE2eeException e) =>
        new(400, "application/json", OpenAiErrors.Body(e.Message, "invalid_request_error", e.Code), e.Code, e.Message);

    /// <summary>One E2EE v2 exchange: request fields decrypted (then the replay claim), response fields encrypted to the client key.</summary>
    private sealed class AciExchange(AciE2eeMiddleware owner, GatewayKeyset keyset, AciRequestHeaders headers) : IE2eeExchange
    {
        private AciExchangeContext? _context;
        private string _path = AciPayload.ChatEndpoint;

        public string Name => "aci-v2";

        public async ValueTask<byte[]> OpenRequestAsync(byte[] wireBody, string path, CancellationToken cancellationToken)
        {
            try
            {
                var body = AciPayload.ParseBody(wireBody, out var model)
                    ?? throw new AciE2eeException(AciE2eeError.InvalidPayloadModel, "an E2EE v2 body must be a JSON object with a string model");
                var context = new AciExchangeContext(headers.Suite, model!, headers.Nonce, headers.Timestamp);
                AciPayload.DecryptRequest(body, path, context, keyset.KeyFor(headers.Suite));
                var servicePublic = keyset.KeyFor(headers.Suite).PublicKey;
                var outcome = await owner.Replay.TryClaimAsync(headers.ClientPublicKey, servicePublic, headers.Nonce, headers.Timestamp, cancellationToken);
                if (outcome != AciReplayOutcome.Claimed)
                {
                    throw new AciE2eeException(AciE2eeError.ReplayDetected, outcome switch
                    {
                        AciReplayOutcome.Full => "the replay store is full; the request is refused rather than left unguarded",
                        AciReplayOutcome.Unavailable => "the shared replay store cannot be reached; the request is refused rather than left unguarded",
                        _ => "this (client key, service key, nonce) was already used",
                    });
                }

                _context = context;
                _path = path;
                return AciPayload.Serialize(body);
            }
            catch (AciE2eeException e)
            {
                throw Refusal(e);
            }
        }

        public void ApplyResponseHeaders(HttpResponse response)
        {
            response.Headers[AciHeaders.Applied] = "true";
            response.Headers[AciHeaders.Version] = AciHeaders.V2;
            response.Headers[AciHeaders.Algo] = headers.Suite.Algo();
        }

        public byte[] SealError(byte[] errorBody, HttpResponse response, bool fromModel)
        {
            if (!fromModel)
            {
                return errorBody;
            }

            var body = ModelErrorBody(response.StatusCode, errorBody);
            response.ContentLength = body.Length;
            return body;
        }

        public IResponseBodyTransform CreateResponseTransform(bool eventStream)
        {
            var context = _context ?? throw new InvalidOperationException("the request was not opened");
            return eventStream
                ? new StreamTransform(_path, context, headers.ClientPublicKey, owner.Random)
                : new BufferedTransform(_path, context, headers.ClientPublicKey, owner.Random);
        }
    }

    /// <summary>Non-streaming: the whole JSON body is buffered, its content fields encrypted, and written once.</summary>
    private sealed class BufferedTransform(string path, AciExchangeContext context, byte[] clientKey, RandomNumberGenerator random) : IResponseBodyTransform
    {
        private const int MaxBodyBytes = 64 * 1024 * 1024;
        private readonly ArrayBufferWriter<byte> _body = new();

        public void Transform(ReadOnlySpan<byte> upstream, IBufferWriter<byte> output)
        {
            if (_body.WrittenCount + upstream.Length > MaxBodyBytes)
            {
                throw new InvalidDataException("the response is too large to encrypt");
            }

            _body.Write(upstream);
        }

        public void Complete(IBufferWriter<byte> output)
        {
            var node = JsonNode.Parse(_body.WrittenSpan, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                ?? throw new InvalidDataException("the model's response is not a JSON object");
            AciPayload.EncryptResponse(node, path, streamChunk: false, context, clientKey, random);
            output.Write(AciPayload.Serialize(node));
        }
    }

    /// <summary>Streaming: each SSE event's JSON gets its content fields encrypted; <c>[DONE]</c> and data-less events pass.</summary>
    private sealed class StreamTransform : IResponseBodyTransform
    {
        private readonly AciSseSplitter _splitter;

        public StreamTransform(string path, AciExchangeContext context, byte[] clientKey, RandomNumberGenerator random)
        {
            _splitter = new AciSseSplitter((lines, data, output) =>
            {
                if (data is null || data == "[DONE]")
                {
                    AciSseSplitter.WriteEvent(output, lines, data);
                    return;
                }

                var node = JsonNode.Parse(data, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }) as JsonObject
                    ?? throw new InvalidDataException("an SSE event of the model is not a JSON object");
                AciPayload.EncryptResponse(node, path, streamChunk: true, context, clientKey, random);
                AciSseSplitter.WriteEvent(output, lines, System.Text.Encoding.UTF8.GetString(AciPayload.Serialize(node)));
            });
        }

        public void Transform(ReadOnlySpan<byte> upstream, IBufferWriter<byte> output) => _splitter.Feed(upstream, output);

        public void Complete(IBufferWriter<byte> output) => _splitter.Complete(output);
    }
}
