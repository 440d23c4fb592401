using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway.E2ee;
using PrivateMl.Gateway.Operations;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Signing;
using PrivateMl.Inference;

namespace PrivateMl.Gateway.Proxy;

/// <summary>
/// Relays one completion request: reads the exact request bytes (bounded), forwards them unchanged, copies the
/// upstream body to the client read by read with a flush after each (no added buffering), hashes what it sends
/// (SSE framing included) and, only when the whole body reached the client's socket, signs
/// <c>sha256(request):sha256(response)</c> with both keys and stores the signature and a receipt. A response that
/// breaks (upstream reset, idle timeout, stream without <c>[DONE]</c>, client gone) is aborted and never signed.
/// </summary>
internal sealed class CompletionRelay(
    GatewayOptions options,
    IInferenceBackend backend,
    SigningKeyHolder keys,
    ISignatureStore store,
    GatewayMetrics metrics,
    TimeProvider time,
    RandomNumberGenerator random,
    ILogger<CompletionRelay> logger)
{
    private const int CopyBufferBytes = 16 * 1024;
    private int _inFlight;

    public async Task HandleAsync(HttpContext context, string path)
    {
        var receivedAt = time.GetUtcNow();
        var body = await ReadBodyAsync(context);
        if (body is null)
        {
            return;
        }

        if (Interlocked.Increment(ref _inFlight) > options.MaxConcurrentStreams)
        {
            Interlocked.Decrement(ref _inFlight);
            metrics.Rejected();
            context.Response.Headers.RetryAfter = "1";
            await OpenAiErrors.WriteAsync(context, 429, "too many concurrent requests on this gateway", "rate_limit_error", "concurrency_limit");
            return;
        }

        try
        {
            var exchange = context.Features.Get<IE2eeExchange>();
            byte[] forward = body;
            if (exchange is not null)
            {
                try
                {
                    forward = exchange.OpenRequest(body, path);
                }
                catch (E2eeRefusedException e)
                {
                    metrics.Rejected();
                    GatewayLog.E2eeRefused(logger, path, e.Code);
                    await e.WriteAsync(context);
                    return;
                }
            }

            await RelayAsync(context, path, body, forward, exchange, receivedAt);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    /// <summary>How much of an oversized body is read and dropped before the 413, so the client sees the answer instead of a reset.</summary>
    internal const int OversizeDrainBytes = 1024 * 1024;

    private async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        var limit = options.MaxRequestBodyBytes;
        var declared = context.Request.ContentLength;
        var buffer = new MemoryStream(declared is { } n && n <= limit ? (int)n : 4096);
        var chunk = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
        long total = 0;
        try
        {
            if (declared > limit + OversizeDrainBytes)
            {
                await RejectOversizeAsync(context, limit);
                return null;
            }

            int read;
            while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
            {
                total += read;
                if (total > limit + OversizeDrainBytes)
                {
                    break;
                }

                if (total <= limit)
                {
                    buffer.Write(chunk, 0, read);
                }
            }

            if (total > limit)
            {
                await RejectOversizeAsync(context, limit);
                return null;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Http.BadHttpRequestException)
        {
            metrics.Rejected();
            if (!context.RequestAborted.IsCancellationRequested)
            {
                await OpenAiErrors.WriteAsync(context, 400, "the request body could not be read", "invalid_request_error");
            }

            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return buffer.ToArray();
    }

    private async Task RejectOversizeAsync(HttpContext context, long limit)
    {
        metrics.Rejected();
        context.Response.Headers.Connection = "close";
        await OpenAiErrors.WriteAsync(context, 413, $"the request body is larger than {limit} bytes", "invalid_request_error", "request_too_large");
    }

    private async Task RelayAsync(HttpContext context, string path, byte[] body, byte[] forward, IE2eeExchange? exchange, DateTimeOffset receivedAt)
    {
        // The signature covers the bytes the client sent (ciphertext when end-to-end encrypted).
        var requestHash = Convert.ToHexStringLower(SHA256.HashData(body));
        var request = new BackendRequest(HttpMethod.Post, path, forward, exchange is null ? context.Request.ContentType ?? "application/json" : "application/json");
        BackendResponse upstream;
        try
        {
            upstream = await backend.SendAsync(request, context.RequestAborted);
        }
        catch (BackendUnavailableException e)
        {
            metrics.UpstreamError();
            GatewayLog.UpstreamUnavailable(logger, path, e.Message);
            await OpenAiErrors.WriteAsync(context, 502, "the inference backend is unavailable", "upstream_error", "upstream_unavailable");
            return;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        await using (upstream)
        {
            if (upstream.StatusCode is < 200 or > 299)
            {
                await RelayErrorAsync(context, path, upstream);
                return;
            }

            await RelaySuccessAsync(context, path, forward, requestHash, receivedAt, upstream, exchange);
        }
    }

    private async Task RelayErrorAsync(HttpContext context, string path, BackendResponse upstream)
    {
        metrics.UpstreamError();
        GatewayLog.UpstreamStatus(logger, upstream.StatusCode, path);
        var bytes = new MemoryStream();
        var chunk = new byte[8 * 1024];
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            timeout.CancelAfter(options.UpstreamIdleTimeout);
            int read;
            while (bytes.Length < 64 * 1024 && (read = await upstream.Body.ReadAsync(chunk, timeout.Token)) > 0)
            {
                bytes.Write(chunk, 0, read);
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
        {
            // Relay what arrived; the status is what matters.
        }

        var relayed = OpenAiErrors.FromUpstream(upstream.StatusCode, bytes.ToArray());
        context.Response.StatusCode = upstream.StatusCode;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = relayed.Length;
        await context.Response.Body.WriteAsync(relayed, context.RequestAborted);
    }

    private async Task RelaySuccessAsync(HttpContext context, string path, byte[] body, string requestHash, DateTimeOffset receivedAt, BackendResponse upstream, IE2eeExchange? exchange)
    {
        var stream = upstream.IsEventStream;
        Span<byte> idBytes = stackalloc byte[16];
        random.GetBytes(idBytes);
        var receiptId = "pml-" + Convert.ToHexStringLower(idBytes);
        var response = context.Response;
        response.StatusCode = upstream.StatusCode;
        response.ContentType = upstream.ContentType ?? "application/json";
        response.Headers["X-Receipt-Id"] = receiptId;
        if (stream)
        {
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
        }

        var transform = exchange?.CreateResponseTransform(stream);
        exchange?.ApplyResponseHeaders(response);
        var transformed = transform is null ? null : new ArrayBufferWriter<byte>(CopyBufferBytes);
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        metrics.CompletionStarted(stream);
        var observer = new ResponseObserver(stream, options.MaxObservedBodyBytes);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
        long sent = 0;
        string? failure = null;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        try
        {
            while (true)
            {
                int read;
                try
                {
                    idle.CancelAfter(options.UpstreamIdleTimeout);
                    read = await upstream.Body.ReadAsync(buffer.AsMemory(0, CopyBufferBytes), idle.Token);
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    failure = "client disconnected";
                    break;
                }
                catch (OperationCanceledException)
                {
                    failure = "upstream idle timeout";
                    break;
                }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    failure = "upstream broke the stream";
                    break;
                }

                if (read == 0)
                {
                    break;
                }

                ReadOnlyMemory<byte> bytes = buffer.AsMemory(0, read);
                observer.Observe(bytes.Span);
                if (transform is not null)
                {
                    transformed!.ResetWrittenCount();
                    if (!TryTransform(transform, bytes.Span, transformed, end: false, out failure))
                    {
                        break;
                    }

                    bytes = transformed.WrittenMemory;
                }

                failure = await SendAsync(context, hash, bytes);
                if (failure is not null)
                {
                    break;
                }

                sent += bytes.Length;
            }

            if (failure is null && transform is not null)
            {
                transformed!.ResetWrittenCount();
                if (TryTransform(transform, default, transformed, end: true, out failure))
                {
                    failure = await SendAsync(context, hash, transformed.WrittenMemory);
                    sent += transformed.WrittenCount;
                }
            }

            observer.Complete();
            if (failure is null && stream && !observer.SawDone)
            {
                failure = "stream ended without [DONE]";
            }

            if (failure is null && context.RequestAborted.IsCancellationRequested)
            {
                failure = "client disconnected";
            }

            metrics.Observed(observer.DataEvents, observer.CompletionTokens, observer.PromptTokens);
            if (failure is not null)
            {
                metrics.Aborted();
                GatewayLog.Aborted(logger, receiptId, sent, failure);
                context.Abort();
                return;
            }

            // Every body byte is on the client's socket; sign and store before the final chunk so a client that
            // asks for the signature right after reading the response always finds it.
            var started = Stopwatch.GetTimestamp();
            var responseHash = Convert.ToHexStringLower(hash.GetHashAndReset());
            var record = Sign(receiptId, observer.ChatId, ReadModel(body), path, receivedAt, requestHash, responseHash);
            var ids = observer.ChatId is { } chatId && chatId != receiptId ? new[] { chatId, receiptId } : new[] { receiptId };
            try
            {
                await store.StoreAsync(ids, record, context.RequestAborted);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                GatewayLog.StoreFailed(logger, receiptId, e);
                metrics.Aborted();
                context.Abort();
                return;
            }

            metrics.Signed(Stopwatch.GetElapsedTime(started));
            GatewayLog.Signed(logger, receiptId, observer.ChatId ?? receiptId, sent);
            await response.CompleteAsync();
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            metrics.Aborted();
            context.Abort();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            metrics.CompletionEnded(stream);
        }
    }

    /// <summary>Hashes and writes bytes to the client; the failure in words, or null.</summary>
    private static async Task<string?> SendAsync(HttpContext context, IncrementalHash hash, ReadOnlyMemory<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return null;
        }

        hash.AppendData(bytes.Span);
        try
        {
            var flush = await context.Response.BodyWriter.WriteAsync(bytes, context.RequestAborted);
            return flush.IsCanceled || flush.IsCompleted ? "client disconnected" : null;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            return "client disconnected";
        }
    }

    /// <summary>Runs the E2EE response transform; any failure aborts the response (fail closed, nothing in clear).</summary>
    private static bool TryTransform(IResponseBodyTransform transform, ReadOnlySpan<byte> upstream, ArrayBufferWriter<byte> output, bool end, out string? failure)
    {
        try
        {
            if (end)
            {
                transform.Complete(output);
            }
            else
            {
                transform.Transform(upstream, output);
            }

            failure = null;
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failure = e is E2eeRefusedException refused ? "E2EE response refused: " + refused.Code : "E2EE response transform failed";
            return false;
        }
    }

    private SignatureRecord Sign(string receiptId, string? chatId, string? model, string path, DateTimeOffset receivedAt, string requestHash, string responseHash)
    {
        var k = keys.Keys;
        var text = requestHash + ":" + responseHash;
        var ecdsa = k.EcdsaKey.PersonalSign(text);
        var ed = k.Ed25519Key.SignText(text);
        var receipt = SignedReceipt.Create(k, receiptId, chatId, model, path, receivedAt, time.GetUtcNow(), requestHash, responseHash, ecdsa);
        return new SignatureRecord(text, ecdsa, k.EcdsaKey.Address, ed, k.Ed25519Key.Address, receipt);
    }

    /// <summary>The request's top-level <c>model</c> string, if any (for the receipt); never throws.</summary>
    internal static string? ReadModel(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isModel = reader.ValueTextEquals("model"u8);
                reader.Read();
                if (isModel && reader.TokenType == JsonTokenType.String)
                {
                    var model = reader.GetString();
                    return model is { Length: <= 256 } ? model : null;
                }

                reader.TrySkip();
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }
}
