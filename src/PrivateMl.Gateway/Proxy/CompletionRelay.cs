using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Hosting;
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

    /// <summary>Request and whole response bodies up to this size are hashed where they were read (a few microseconds).</summary>
    internal const int InlineHashBytes = 16 * 1024;
    private int _inFlight;

    /// <summary>Completions being relayed now (for the shutdown log).</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    public async Task HandleAsync(HttpContext context, string path)
    {
        var times = metrics.FirstByteEnabled ? new FirstByteTimes(Stopwatch.GetTimestamp()) : null;
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
                // Opening costs a key agreement per encrypted field (ACI): a body at the 4 MiB default limit can hold
                // tens of thousands, over a second of CPU that no connection sharing a socket thread should wait out.
                await SocketThread.Leave();
                try
                {
                    forward = await exchange.OpenRequestAsync(body, path, context.RequestAborted);
                }
                catch (E2eeRefusedException e)
                {
                    metrics.Rejected();
                    GatewayLog.E2eeRefused(logger, path, e.Code);
                    await e.WriteAsync(context);
                    return;
                }
            }

            await RelayAsync(context, path, body, forward, exchange, receivedAt, times);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            if (times is not null)
            {
                metrics.FirstByte(times);
            }
        }
    }

    private async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        var limit = options.MaxRequestBodyBytes;
        var declared = context.Request.ContentLength;
        if (declared is { } length && length <= limit && length <= Array.MaxLength)
        {
            return await ReadDeclaredBodyAsync(context, (int)length);
        }

        var buffer = new MemoryStream(4096);
        var chunk = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
        long total = 0;
        try
        {
            if (declared is { } announced && !OversizeBody.IsDrainable(announced, limit))
            {
                await RejectOversizeAsync(context, limit);
                return null;
            }

            int read;
            while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
            {
                total += read;
                if (total > limit)
                {
                    await OversizeBody.DrainAsync(context.Request.Body, chunk, total, limit, context.RequestAborted);
                    await RejectOversizeAsync(context, limit);
                    return null;
                }

                buffer.Write(chunk, 0, read);
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

    /// <summary>
    /// A body with a Content-Length within the limit is read straight into an array of that size (Kestrel ends the
    /// body at exactly that length and fails a shorter one).
    /// </summary>
    private async Task<byte[]?> ReadDeclaredBodyAsync(HttpContext context, int length)
    {
        var body = length == 0 ? [] : GC.AllocateUninitializedArray<byte>(length);
        var filled = 0;
        try
        {
            int read;
            while (filled < length && (read = await context.Request.Body.ReadAsync(body.AsMemory(filled), context.RequestAborted)) > 0)
            {
                filled += read;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Http.BadHttpRequestException)
        {
            filled = -1;
        }

        if (filled == length)
        {
            return body;
        }

        metrics.Rejected();
        if (!context.RequestAborted.IsCancellationRequested)
        {
            await OpenAiErrors.WriteAsync(context, 400, "the request body could not be read", "invalid_request_error");
        }

        return null;
    }

    private async Task RejectOversizeAsync(HttpContext context, long limit)
    {
        metrics.Rejected();
        context.Response.Headers.Connection = "close";
        await OpenAiErrors.WriteAsync(context, 413, $"the request body is larger than {limit} bytes", "invalid_request_error", "request_too_large");
    }

    private async Task RelayAsync(HttpContext context, string path, byte[] body, byte[] forward, IE2eeExchange? exchange, DateTimeOffset receivedAt, FirstByteTimes? times)
    {
        times?.Mark(FirstBytePhase.RequestRead);
        var request = new BackendRequest(HttpMethod.Post, path, forward, exchange is null ? context.Request.ContentType ?? "application/json" : "application/json");

        // The request goes to the upstream first; what only the signature and the body's copy need (the request hash,
        // a receipt id, the idle timeout's link to the client's connection) is made while the upstream works on it.
        // Done before, it delayed the request; done after the upstream answered, it delayed the first byte — and on a
        // core that idled since the last request, each of those calls costs tens of microseconds (cold caches), more
        // than the relay's own work.
        var sending = StartSend(request, context.RequestAborted);
        if (body.Length > InlineHashBytes)
        {
            // A long prompt's hash (a 128k-token context is ~0.5 MB: a few hundred microseconds) would hold up every
            // other connection of a socket thread; the response's first byte still comes back on the socket thread.
            await SocketThread.Leave();
        }

        var receipt = PrepareReceipt(context, path, body, forward, receivedAt, times);
        using var idle = new IdleTimeout(options.UpstreamIdleTimeout, context.RequestAborted);
        BackendResponse upstream;
        try
        {
            upstream = await sending;
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

        times?.Mark(FirstBytePhase.UpstreamHeaders);
        await using (upstream)
        {
            if (upstream.StatusCode is < 200 or > 299)
            {
                await RelayErrorAsync(context, path, upstream, exchange);
                return;
            }

            if (upstream.IsEventStream)
            {
                await RelayStreamAsync(context, receipt, upstream, exchange, idle);
            }
            else
            {
                await RelayWholeAsync(context, receipt, upstream, exchange, idle);
            }
        }
    }

    /// <summary>The backend's send as a task, with an exception thrown before its first await in the task too.</summary>
    private Task<BackendResponse> StartSend(BackendRequest request, CancellationToken cancellationToken)
    {
        try
        {
            return backend.SendAsync(request, cancellationToken);
        }
        catch (Exception e)
        {
            return Task.FromException<BackendResponse>(e);
        }
    }

    /// <summary>What is known about a response before its body: its receipt id and the request it answers.</summary>
    private PendingReceipt PrepareReceipt(HttpContext context, string path, byte[] body, byte[] forward, DateTimeOffset receivedAt, FirstByteTimes? times)
    {
        // The signature covers the bytes the client sent (ciphertext when end-to-end encrypted); the receipt's model
        // is read from what the upstream got.
        var requestHash = Convert.ToHexStringLower(SHA256.HashData(body));
        Span<byte> idBytes = stackalloc byte[16];
        random.GetBytes(idBytes);
        return new PendingReceipt("pml-" + Convert.ToHexStringLower(idBytes), path, forward, requestHash, receivedAt, context.Features.Get<CallerCredential>()?.Hash, times);
    }

    private async Task RelayErrorAsync(HttpContext context, string path, BackendResponse upstream, IE2eeExchange? exchange)
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
        if (exchange is not null)
        {
            relayed = exchange.SealError(relayed, context.Response, fromModel: true);
        }

        await context.Response.Body.WriteAsync(relayed, context.RequestAborted);
    }

    private static void WriteSuccessHeaders(HttpContext context, BackendResponse upstream, string receiptId)
    {
        var response = context.Response;
        response.StatusCode = upstream.StatusCode;
        response.ContentType = upstream.ContentType ?? "application/json";
        response.Headers["X-Receipt-Id"] = receiptId;
    }

    /// <summary>
    /// SSE: each upstream read goes to the client at once (no added buffering), chunked; signed after the last byte,
    /// before the final chunk. Each read is hashed and inspected after it was handed to the client's connection: the
    /// bytes are the same (the buffer is not reused before), and the token does not wait for the bookkeeping.
    /// </summary>
    private async Task RelayStreamAsync(HttpContext context, PendingReceipt receipt, BackendResponse upstream, IE2eeExchange? exchange, IdleTimeout idle)
    {
        WriteSuccessHeaders(context, upstream, receipt.Id);
        var response = context.Response;
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var transform = exchange?.CreateResponseTransform(true);
        exchange?.ApplyResponseHeaders(response);
        var transformed = transform is null ? null : new ArrayBufferWriter<byte>(CopyBufferBytes);
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var counted = false;
        var observer = new ResponseObserver(eventStream: true, options.MaxObservedBodyBytes);
        IncrementalHash? hash = null;
        byte[]? buffer = null;
        long sent = 0;
        string? failure = null;
        var times = receipt.Times;
        var awaitingUpstreamByte = times is not null;
        var awaitingClientByte = awaitingUpstreamByte;
        try
        {
            while (true)
            {
                // Wait for the next bytes without holding a buffer (a zero-byte read; a stream that cannot wait so
                // returns at once and the read below waits instead), then rent one for that read and the send only.
                // A stream spends nearly all its time waiting for tokens: a buffer held across the wait is 16 KiB
                // per open stream (16 MiB at the default 1,024 streams), and once the shared pool runs dry every
                // rent is a fresh array. Rented around the read and send only, a few arrays serve all streams.
                var (_, waitFailure) = await ReadUpstreamAsync(context, upstream, Memory<byte>.Empty, idle);
                if (waitFailure is not null)
                {
                    failure = waitFailure;
                    break;
                }

                // Sealing (E2EE) costs a key agreement per content field, and one read can hold many events or
                // choices: not work for a socket thread, even before the first byte.
                if (sent > 0 || transform is not null)
                {
                    await SocketThread.Leave();
                }

                buffer = ArrayPool<byte>.Shared.Rent(CopyBufferBytes);
                var (read, readFailure) = await ReadUpstreamAsync(context, upstream, buffer.AsMemory(0, CopyBufferBytes), idle);
                if (readFailure is not null)
                {
                    failure = readFailure;
                    break;
                }

                if (read == 0)
                {
                    break;
                }

                if (awaitingUpstreamByte)
                {
                    times!.Mark(FirstBytePhase.UpstreamFirstByte);
                    awaitingUpstreamByte = false;
                }

                ReadOnlyMemory<byte> received = buffer.AsMemory(0, read);
                var bytes = received;
                if (transform is not null)
                {
                    transformed!.ResetWrittenCount();
                    if (!TryTransform(transform, received.Span, transformed, end: false, out failure))
                    {
                        break;
                    }

                    bytes = transformed.WrittenMemory;
                }

                if (!await WriteToClientAsync(context, bytes))
                {
                    failure = "client disconnected";
                    break;
                }

                if (awaitingClientByte && bytes.Length > 0)
                {
                    times!.Mark(FirstBytePhase.ClientFirstByte);
                    metrics.FirstByte(times);
                    awaitingClientByte = false;
                }

                // Counted once the first bytes are out: the counters are not what the first token should wait for.
                if (!counted)
                {
                    metrics.CompletionStarted(stream: true);
                    counted = true;
                }

                Hash(ref hash, bytes.Span);
                observer.Observe(received.Span);
                sent += bytes.Length;
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
            }

            if (failure is null && transform is not null)
            {
                await SocketThread.Leave(); // the end of the upstream body may have come on a socket thread
                transformed!.ResetWrittenCount();
                if (TryTransform(transform, default, transformed, end: true, out failure))
                {
                    if (await WriteToClientAsync(context, transformed.WrittenMemory))
                    {
                        Hash(ref hash, transformed.WrittenSpan);
                        sent += transformed.WrittenCount;
                    }
                    else
                    {
                        failure = "client disconnected";
                    }
                }
            }

            observer.Complete();
            if (failure is null && !observer.SawDone)
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
                Abort(context, receipt.Id, sent, failure);
                return;
            }

            // Every body byte is on the client's socket; sign and store before the final chunk so a client that
            // asks for the signature right after reading the response always finds it.
            await SocketThread.Leave();
            var responseHash = Convert.ToHexStringLower(hash is null ? SHA256.HashData(ReadOnlySpan<byte>.Empty) : hash.GetHashAndReset());
            if (await SignAndStoreAsync(context, receipt, observer.ChatId, responseHash, sent))
            {
                await response.CompleteAsync();
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            metrics.Aborted();
            context.Abort();
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            hash?.Dispose();
            if (!counted)
            {
                metrics.CompletionStarted(stream: true);
            }

            metrics.CompletionEnded(stream: true);
        }
    }

    /// <summary>
    /// A non-streaming body is read whole (bounded by <see cref="GatewayOptions.MaxObservedBodyBytes"/>) and sent with
    /// a Content-Length. Nothing has reached the client while the upstream is read, so an upstream that breaks off
    /// or is too large gets a 502 instead of an aborted 2xx. All but the last byte go out first; the signature over
    /// exactly these bytes is stored; then the last byte completes the response (so a client that asks for the
    /// signature as soon as it has the body always finds it, and a client gone before that leaves no signature).
    /// </summary>
    private async Task RelayWholeAsync(HttpContext context, PendingReceipt receipt, BackendResponse upstream, IE2eeExchange? exchange, IdleTimeout idle)
    {
        metrics.CompletionStarted(stream: false);
        var limit = options.MaxObservedBodyBytes;
        var whole = new ArrayBufferWriter<byte>(CopyBufferBytes);
        string? failure = null;
        try
        {
            while (true)
            {
                var (read, readFailure) = await ReadUpstreamAsync(context, upstream, whole.GetMemory(CopyBufferBytes), idle);
                if (readFailure is not null)
                {
                    failure = readFailure;
                    break;
                }

                if (read == 0)
                {
                    break;
                }

                whole.Advance(read);
                if (whole.WrittenCount > limit)
                {
                    failure = $"the upstream response is larger than {limit} bytes";
                    break;
                }
            }

            if (failure is not null)
            {
                metrics.Aborted();
                GatewayLog.Aborted(logger, receipt.Id, 0, failure);
                if (!context.RequestAborted.IsCancellationRequested)
                {
                    metrics.UpstreamError();
                    await OpenAiErrors.WriteAsync(context, 502, "the inference backend's response broke off or was too large", "upstream_error", "upstream_incomplete");
                }

                return;
            }

            if (exchange is not null || whole.WrittenCount > InlineHashBytes)
            {
                // Parsing, sealing (a key agreement per content field) and hashing a body of up to the observed limit
                // would hold up every other connection of a socket thread; a short plaintext answer is cheaper than the hop.
                await SocketThread.Leave();
            }

            ReadOnlyMemory<byte> bytes = whole.WrittenMemory;
            var observer = new ResponseObserver(eventStream: false, limit);
            observer.Observe(bytes.Span);
            observer.Complete();
            metrics.Observed(observer.DataEvents, observer.CompletionTokens, observer.PromptTokens);

            WriteSuccessHeaders(context, upstream, receipt.Id);
            if (exchange is not null)
            {
                // Sealed whole, before anything is sent: a transform failure is still a clean 502, never plaintext.
                var transform = exchange.CreateResponseTransform(false);
                var sealedBody = new ArrayBufferWriter<byte>(bytes.Length + CopyBufferBytes);
                if (!TryTransform(transform, bytes.Span, sealedBody, end: false, out var sealFailure)
                    || !TryTransform(transform, default, sealedBody, end: true, out sealFailure))
                {
                    GatewayLog.Aborted(logger, receipt.Id, 0, sealFailure!);
                    context.Response.Headers.Remove("X-Receipt-Id");
                    await OpenAiErrors.WriteAsync(context, 502, "the response could not be encrypted for the client", "upstream_error", "e2ee_response_failed");
                    return;
                }

                exchange.ApplyResponseHeaders(context.Response);
                bytes = sealedBody.WrittenMemory;
            }

            var responseHash = Convert.ToHexStringLower(SHA256.HashData(bytes.Span));
            if (exchange is null)
            {
                // EHBP's spec has sealed responses chunked with no Content-Length; plaintext answers carry one.
                context.Response.ContentLength = bytes.Length;
            }
            var head = bytes.Length == 0 ? bytes : bytes[..^1];
            if (head.Length > 0 && !await WriteToClientAsync(context, head))
            {
                Abort(context, receipt.Id, 0, "client disconnected");
                return;
            }

            await SocketThread.Leave();
            if (await SignAndStoreAsync(context, receipt, observer.ChatId, responseHash, bytes.Length))
            {
                if (bytes.Length > 0 && !await WriteToClientAsync(context, bytes[^1..]))
                {
                    // The signature is stored, but the client left before its last byte; it cannot have the body.
                    Abort(context, receipt.Id, head.Length, "client disconnected");
                    return;
                }

                await context.Response.CompleteAsync();
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            metrics.Aborted();
            context.Abort();
        }
        finally
        {
            metrics.CompletionEnded(stream: false);
        }
    }

    /// <summary>
    /// One upstream read under the idle timeout: (bytes read, null) or (0, why it failed). Called once per relayed
    /// chunk, so its state machine comes from a pool instead of a new allocation each time the read has to wait.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<(int Read, string? Failure)> ReadUpstreamAsync(HttpContext context, BackendResponse upstream, Memory<byte> into, IdleTimeout idle)
    {
        try
        {
            // A read the upstream's bytes already answer is not idle time: the timer is first set when a read has to
            // wait (so the first token, which usually comes with the headers, does not wait for a timer to be made).
            var reading = upstream.Body.ReadAsync(into, idle.Token);
            if (!reading.IsCompleted || idle.IsArmed)
            {
                idle.Touch();
            }

            return (await reading, null);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return (0, "client disconnected");
        }
        catch (OperationCanceledException)
        {
            return (0, "upstream idle timeout");
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            return (0, "upstream broke the stream");
        }
    }

    /// <summary>
    /// The upstream idle timeout of one response: it fires between the timeout and 1⅛ of it after the last read began,
    /// counted from the first read that had to wait.
    /// Re-arming a timer on every read of a token stream costs a timer-queue update per token, so the timer is moved
    /// only when an eighth of the timeout has passed since it was last set.
    /// </summary>
    private sealed class IdleTimeout(TimeSpan timeout, CancellationToken aborted) : IDisposable
    {
        private readonly CancellationTokenSource _source = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        private readonly TimeSpan _step = timeout / 8;
        private long _armedAt;

        public CancellationToken Token => _source.Token;

        public bool IsArmed => _armedAt != 0;

        public void Touch()
        {
            var now = Stopwatch.GetTimestamp();
            if (_armedAt != 0 && Stopwatch.GetElapsedTime(_armedAt, now) < _step)
            {
                return;
            }

            _source.CancelAfter(timeout + _step);
            _armedAt = now;
        }

        public void Dispose() => _source.Dispose();
    }

    /// <summary>
    /// Writes and flushes; false when the client is gone. Called once per relayed chunk, so its state machine comes
    /// from a pool like <see cref="ReadUpstreamAsync"/>'s.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<bool> WriteToClientAsync(HttpContext context, ReadOnlyMemory<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return true;
        }

        try
        {
            var flush = await context.Response.BodyWriter.WriteAsync(bytes, context.RequestAborted);
            return !(flush.IsCanceled || flush.IsCompleted);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
    }

    private void Abort(HttpContext context, string receiptId, long sent, string failure)
    {
        metrics.Aborted();
        GatewayLog.Aborted(logger, receiptId, sent, failure);
        context.Abort();
    }

    /// <summary>Signs <c>sha256(request):sha256(response)</c> and stores it; false (response aborted) if the store failed.</summary>
    private async Task<bool> SignAndStoreAsync(HttpContext context, PendingReceipt receipt, string? chatId, string responseHash, long sent)
    {
        var started = Stopwatch.GetTimestamp();
        var record = Sign(receipt, chatId, responseHash);
        var ids = chatId is not null && chatId != receipt.Id ? new[] { chatId, receipt.Id } : new[] { receipt.Id };
        try
        {
            await store.StoreAsync(ids, record, context.RequestAborted);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            GatewayLog.StoreFailed(logger, receipt.Id, e);
            metrics.Aborted();
            context.Abort();
            return false;
        }

        metrics.Signed(Stopwatch.GetElapsedTime(started));
        GatewayLog.Signed(logger, receipt.Id, chatId ?? receipt.Id, sent);
        return true;
    }

    /// <summary>Adds sent bytes to the response hash, made at the first bytes (nothing to hash before the first byte is out).</summary>
    private static void Hash(ref IncrementalHash? hash, ReadOnlySpan<byte> sent)
    {
        if (!sent.IsEmpty)
        {
            (hash ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256)).AppendData(sent);
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

    /// <summary>What is known about a response before its body: its receipt id and the request it answers.</summary>
    /// <param name="Times">The first-byte phases so far; null when nobody listens.</param>
    private sealed record PendingReceipt(string Id, string Path, byte[] RequestBody, string RequestHash, DateTimeOffset ReceivedAt, string? CredentialHash, FirstByteTimes? Times);

    private SignatureRecord Sign(PendingReceipt pending, string? chatId, string responseHash)
    {
        var k = keys.Keys;
        var text = pending.RequestHash + ":" + responseHash;
        var ecdsa = k.EcdsaKey.PersonalSign(text);
        var ed = k.Ed25519Key.SignText(text);
        var receipt = SignedReceipt.Create(k, pending.Id, chatId, ReadModel(pending.RequestBody), pending.Path, pending.ReceivedAt, time.GetUtcNow(), pending.RequestHash, responseHash, ecdsa);
        return new SignatureRecord(text, ecdsa, k.EcdsaKey.Address, ed, k.Ed25519Key.Address, receipt, pending.CredentialHash);
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
