using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.Gateway.Operations;

namespace PrivateMl.Gateway.E2ee.Ehbp;

/// <summary>
/// EHBP on the gateway (Tinfoil SPEC §4–§5). Serves <c>GET /.well-known/hpke-keys</c>. A request with an
/// <c>Ehbp-Encapsulated-Key</c> header is decapsulated and its framed body read (bounded) and opened chunk by chunk
/// before the handler runs; any failure answers in plaintext problem+json and the handler never sees the request:
/// malformed header, framing or a later chunk → 400; a key the gateway cannot use (decapsulation, or the first
/// chunk failing under the selected key) → 422 <c>urn:ietf:params:ehbp:error:key-config</c>. The bodies give no
/// finer cause (§5.4.4). Every response of an accepted request is sealed chunk by chunk as the handler writes it
/// (one frame per write, never buffered whole) under a fresh <c>Ehbp-Response-Nonce</c>. Requests without the header
/// pass through untouched (bodyless requests, §7.4). The middleware records the SHA-256 of the ciphertext received
/// and returned (<see cref="IWireBodyHashFeature"/>), which the relay signs instead of the plaintext hashes.
/// </summary>
internal sealed class EhbpMiddleware(
    RequestDelegate next,
    EhbpKeyHolder keys,
    GatewayOptions options,
    RandomNumberGenerator random,
    ILogger<EhbpMiddleware> logger)
{
    /// <summary>Response plaintext per frame at most (a larger write becomes several frames).</summary>
    internal const int MaxResponseChunkBytes = 64 * 1024;

    /// <summary>Largest request frame accepted (the Go and .NET clients seal 8 KiB chunks).</summary>
    internal const int MaxRequestFrameBytes = 1024 * 1024;

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Path.Equals(EhbpProtocol.KeysPath, StringComparison.Ordinal))
        {
            await ServeKeysAsync(context);
            return;
        }

        var headers = context.Request.Headers[EhbpProtocol.EncapsulatedKeyHeader];
        if (headers.Count == 0)
        {
            await next(context);
            return;
        }

        var key = keys.Key;
        if (key is null)
        {
            await ProblemAsync(context, 503, "about:blank", "the encryption key is not ready");
            return;
        }

        if (headers.Count != 1)
        {
            await RejectAsync(context, 400, "more than one " + EhbpProtocol.EncapsulatedKeyHeader);
            return;
        }

        EhbpServerExchange exchange;
        try
        {
            exchange = EhbpServerExchange.Accept(headers[0], key.PrivateKey);
        }
        catch (AttestationException e)
        {
            await RejectAsync(context, e.Code == ErrorCode.EhbpHeaderMalformed ? 400 : 422, e.Code.ToString());
            return;
        }

        using (exchange)
        {
            var (wire, tooLarge) = await ReadWireAsync(context);
            if (wire is null)
            {
                if (tooLarge)
                {
                    context.Response.Headers.Connection = "close";
                    await ProblemAsync(context, 413, "about:blank", "the encrypted request body is too large");
                }

                return;
            }

            if (wire.Length == 0)
            {
                // SPEC §7.4: with no body nothing authenticates the encapsulated key; refuse rather than answer.
                await RejectAsync(context, 400, "encapsulated key without a body");
                return;
            }

            byte[] plaintext;
            try
            {
                plaintext = exchange.OpenBody(wire, (int)options.MaxRequestBodyBytes);
            }
            catch (AttestationException e)
            {
                var status = e.Code == ErrorCode.EhbpBodyTooLarge ? 413
                    : e.Code is ErrorCode.EhbpChunkAuthenticationFailed or ErrorCode.EhbpChunkOutOfOrder && exchange.Request.Sequence == 0 ? 422
                    : 400;
                await RejectAsync(context, status, e.Code.ToString());
                return;
            }

            await RunEncryptedAsync(context, exchange, wire, plaintext);
        }
    }

    private async Task RunEncryptedAsync(HttpContext context, EhbpServerExchange exchange, byte[] wire, byte[] plaintext)
    {
        var request = context.Request;
        request.Body = new MemoryStream(plaintext, writable: false);
        request.ContentLength = plaintext.Length;
        request.Headers.Remove(EhbpProtocol.EncapsulatedKeyHeader);
        request.Headers.TransferEncoding = default;

        var (nonceHeader, cipher) = exchange.CreateResponse(random);
        using var responseHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var hashes = new WireHashes(Convert.ToHexStringLower(SHA256.HashData(wire)), responseHash);
        var original = context.Features.Get<IHttpResponseBodyFeature>()!;
        var encrypting = new EhbpEncryptingStream(original.Stream, cipher, MaxResponseChunkBytes, hashes.Append, leaveOpen: true);
        var body = new EncryptedResponseBody(original, encrypting);
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[EhbpProtocol.ResponseNonceHeader] = nonceHeader;
            context.Response.ContentLength = null;
            return Task.CompletedTask;
        });
        context.Features.Set<IHttpResponseBodyFeature>(body);
        context.Features.Set<IWireBodyHashFeature>(hashes);
        try
        {
            await next(context);
            await body.CompleteAsync();
        }
        finally
        {
            context.Features.Set(original);
            context.Features.Set<IWireBodyHashFeature>(null);
            await encrypting.DisposeAsync();
        }
    }

    private async Task<(byte[]? Wire, bool TooLarge)> ReadWireAsync(HttpContext context)
    {
        var limit = options.MaxRequestBodyBytes + EhbpRequestLimits.FramingAllowance(options.MaxRequestBodyBytes);
        var buffer = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    return (null, true);
                }

                buffer.Write(chunk, 0, read);
            }

            return (buffer.ToArray(), false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or BadHttpRequestException)
        {
            if (!context.RequestAborted.IsCancellationRequested)
            {
                await ProblemAsync(context, 400, "about:blank", "the request body could not be read");
            }

            return (null, false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    private async Task ServeKeysAsync(HttpContext context)
    {
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.StatusCode = 405;
            return;
        }

        var key = keys.Key;
        if (key is null)
        {
            await ProblemAsync(context, 503, "about:blank", "the encryption key is not ready");
            return;
        }

        context.Response.ContentType = EhbpProtocol.KeysMediaType;
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentLength = key.KeyConfig.Length;
        await context.Response.Body.WriteAsync(key.KeyConfig, context.RequestAborted);
    }

    private Task RejectAsync(HttpContext context, int status, string cause)
    {
        // The cause goes to the log only; the answer says no more than the spec allows (§5.4.4).
        GatewayLog.Rejected(logger, context.Request.Path.Value ?? "/", status, "EHBP: " + cause);
        return status == 422
            ? ProblemAsync(context, 422, EhbpProtocol.KeyConfigProblemType, "the request was not encrypted to a key this server holds")
            : ProblemAsync(context, status, "about:blank", "the encrypted request could not be processed");
    }

    private static async Task ProblemAsync(HttpContext context, int status, string type, string title)
    {
        var body = System.Text.Encoding.UTF8.GetBytes($"{{\"type\":\"{type}\",\"title\":\"{title}\",\"status\":{status}}}");
        context.Response.StatusCode = status;
        context.Response.ContentType = EhbpProtocol.ProblemMediaType;
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    private sealed class WireHashes(string requestSha256, IncrementalHash response) : IWireBodyHashFeature
    {
        private readonly Lock _gate = new();

        public string RequestSha256 => requestSha256;

        public void Append(ReadOnlySpan<byte> bytes)
        {
            lock (_gate)
            {
                response.AppendData(bytes);
            }
        }

        public string ResponseSha256()
        {
            lock (_gate)
            {
                return Convert.ToHexStringLower(response.GetCurrentHash());
            }
        }
    }

    /// <summary>The response body seen by the handler: its stream and pipe both seal into frames on the real body.</summary>
    private sealed class EncryptedResponseBody(IHttpResponseBodyFeature inner, EhbpEncryptingStream encrypting) : IHttpResponseBodyFeature
    {
        private readonly PipeWriter _writer = PipeWriter.Create(encrypting, new StreamPipeWriterOptions(leaveOpen: true));
        private bool _completed;

        public Stream Stream => encrypting;

        public PipeWriter Writer => _writer;

        public void DisableBuffering() => inner.DisableBuffering();

        public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
            SendFileFallback.SendFileAsync(encrypting, path, offset, count, cancellationToken);

        public async Task CompleteAsync()
        {
            if (_completed)
            {
                return;
            }

            _completed = true;
            await _writer.CompleteAsync();
            await inner.CompleteAsync();
        }
    }
}

/// <summary>How much larger than the plaintext limit an encrypted request body may be.</summary>
internal static class EhbpRequestLimits
{
    /// <summary>Room for frame headers and tags (20 bytes per frame; 1 KiB frames at worst) plus 64 KiB.</summary>
    public static long FramingAllowance(long plaintextLimit) => (plaintextLimit / 1024 * 20) + (64 * 1024);
}
