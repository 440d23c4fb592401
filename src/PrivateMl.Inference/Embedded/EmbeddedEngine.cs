using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Microsoft.Extensions.Logging;
using PrivateMl.Inference.Models;

namespace PrivateMl.Inference.Embedded;

/// <summary>
/// An OpenAI-compatible inference engine inside the process, on llama.cpp (LLamaSharp, CPU). It serves
/// <c>POST /v1/chat/completions</c>, <c>POST /v1/completions</c> (streaming and not), <c>GET /v1/models</c> and
/// <c>GET /metrics</c>; applies the model's chat template from the GGUF metadata; honours temperature, top_p,
/// max_tokens, stop, seed and n=1; and runs at most <see cref="EmbeddedEngineOptions.MaxConcurrency"/> generations
/// at once with a bounded queue, answering 429 beyond it. Bad requests get OpenAI-shaped 4xx errors.
/// </summary>
public sealed partial class EmbeddedEngine : IInferenceBackend, IAsyncDisposable
{
    private readonly EmbeddedEngineOptions options;
    private readonly LLamaWeights weights;
    private readonly ModelParams contextParams;
    private readonly SemaphoreSlim slots;
    private readonly CancellationTokenSource shutdown = new();
    private readonly ConcurrentDictionary<Task, bool> running = new();
    private readonly ConcurrentBag<LLamaContext> idleContexts = [];
    private readonly bool hasTemplate;
    private readonly long created;
    private int admitted;
    private long requestsTotal;
    private long rejectedTotal;
    private long errorsTotal;
    private long tokensTotal;

    private EmbeddedEngine(EmbeddedEngineOptions options, LLamaWeights weights, ModelParams contextParams, string modelId, bool hasTemplate)
    {
        this.options = options;
        this.weights = weights;
        this.contextParams = contextParams;
        this.hasTemplate = hasTemplate;
        ModelId = modelId;
        ContextSize = (int)contextParams.ContextSize!.Value;
        slots = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        created = options.TimeProvider.GetUtcNow().ToUnixTimeSeconds();
    }

    public string Name => "embedded";

    /// <summary>The id clients send as <c>model</c>.</summary>
    public string ModelId { get; }

    /// <summary>Context length of each request (prompt plus completion).</summary>
    public int ContextSize { get; }

    /// <summary>Test hook: awaited after a request takes its slot, before it generates.</summary>
    internal Func<CancellationToken, Task>? OnSlotAcquired { get; set; }

    /// <summary>Loads the model; throws <see cref="GgufFormatException"/> for a broken file and <see cref="ArgumentException"/> for bad options.</summary>
    public static EmbeddedEngine Load(EmbeddedEngineOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxConcurrency, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxQueue);
        if (!File.Exists(options.ModelPath))
        {
            throw new FileNotFoundException($"model file not found: {options.ModelPath}", options.ModelPath);
        }

        var header = GgufReader.Read(options.ModelPath);
        var architecture = header.GetString("general.architecture");
        var trained = architecture is null ? null : header.GetUInt32($"{architecture}.context_length");
        var contextSize = options.ContextSize ?? (int)Math.Min(trained ?? 4096, 4096);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextSize, 16);

        LlamaNativeLog.Install(options.Logger);
        var parameters = new ModelParams(options.ModelPath)
        {
            ContextSize = (uint)contextSize,
            GpuLayerCount = 0,
            Threads = options.Threads,
            BatchThreads = options.Threads,
        };
        var weights = LLamaWeights.LoadFromFile(parameters);
        var id = options.ModelId ?? header.GetString("general.name") ?? Path.GetFileNameWithoutExtension(options.ModelPath);
        return new EmbeddedEngine(options, weights, parameters, id, header.GetString("tokenizer.chat_template") is not null);
    }

    public async Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(shutdown.IsCancellationRequested, this);
        var path = request.PathAndQuery.Split('?', 2)[0];
        var get = request.Method == HttpMethod.Get;
        var post = request.Method == HttpMethod.Post;
        return path switch
        {
            "/v1/chat/completions" when post => await CompleteAsync(CompletionKind.Chat, request.Body, cancellationToken),
            "/v1/completions" when post => await CompleteAsync(CompletionKind.Text, request.Body, cancellationToken),
            "/v1/models" when get => Json(200, OpenAiJson.Models(ModelId, created, Name, ContextSize)),
            "/metrics" when get => Metrics(),
            "/health" when get => Json(200, "{}"u8.ToArray()),
            "/v1/chat/completions" or "/v1/completions" or "/v1/models" or "/metrics" or "/health" =>
                Error(OpenAiError.MethodNotAllowed(request.Method.Method, path)),
            _ => Error(OpenAiError.NotFound(path)),
        };
    }

    private async Task<BackendResponse> CompleteAsync(CompletionKind kind, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref requestsTotal);
        if (body.Length > options.MaxRequestBytes)
        {
            return Error(new OpenAiError(413, $"The request body is larger than {options.MaxRequestBytes} bytes.", "invalid_request_error"));
        }

        Plan plan;
        try
        {
            plan = Prepare(CompletionRequest.Parse(kind, body));
        }
        catch (OpenAiErrorException e)
        {
            return Error(e.Error);
        }

        if (Interlocked.Increment(ref admitted) > options.MaxConcurrency + options.MaxQueue)
        {
            Interlocked.Decrement(ref admitted);
            Interlocked.Increment(ref rejectedTotal);
            return Error(OpenAiError.Busy(options.MaxConcurrency, options.MaxQueue));
        }

        var released = 0;
        void Release()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                slots.Release();
                Interlocked.Decrement(ref admitted);
            }
        }

        try
        {
            await slots.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Decrement(ref admitted);
            throw;
        }

        try
        {
            if (OnSlotAcquired is { } hook)
            {
                await hook(cancellationToken);
            }

            var header = new OpenAiJson.Header(
                kind,
                (kind == CompletionKind.Chat ? "chatcmpl-" : "cmpl-") + options.NewId(),
                options.TimeProvider.GetUtcNow().ToUnixTimeSeconds(),
                ModelId);
            if (!plan.Request.Stream)
            {
                var text = new StringBuilder();
                using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, shutdown.Token);
                (string Finish, int Tokens) outcome;
                try
                {
                    outcome = await Track(GenerateAsync(plan, piece =>
                    {
                        text.Append(piece);
                        return ValueTask.FromResult(true);
                    }, abort.Token));
                }
                catch (Exception e) when (e is LLama.Exceptions.RuntimeError or InvalidOperationException)
                {
                    options.Logger?.LogError(e, "generation failed");
                    return Error(new OpenAiError(500, "Generation failed.", "server_error"));
                }
                finally
                {
                    Release();
                }

                return Json(200, OpenAiJson.Completion(header, text.ToString(), outcome.Finish, new(plan.PromptTokens.Length, outcome.Tokens)));
            }

            return StartStream(plan, header, Release, cancellationToken);
        }
        catch
        {
            Release();
            throw;
        }
    }

    private BackendResponse StartStream(Plan plan, OpenAiJson.Header header, Action release, CancellationToken cancellationToken)
    {
        var pipe = new Pipe();
        var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, shutdown.Token);
        async Task<bool> Send(byte[] bytes)
        {
            var result = await pipe.Writer.WriteAsync(bytes, abort.Token);
            return !result.IsCompleted && !result.IsCanceled;
        }

        var producer = Task.Run(async () =>
        {
            try
            {
                if (header.Kind == CompletionKind.Chat && !await Send(OpenAiJson.Chunk(header, "assistant", "", null)))
                {
                    return;
                }

                var (finish, count) = await GenerateAsync(plan, piece => new ValueTask<bool>(Send(OpenAiJson.Chunk(header, null, piece, null))), abort.Token);
                if (!await Send(OpenAiJson.Chunk(header, null, header.Kind == CompletionKind.Chat ? null : "", finish)))
                {
                    return;
                }

                if (plan.Request.IncludeUsage && !await Send(OpenAiJson.UsageChunk(header, new(plan.PromptTokens.Length, count))))
                {
                    return;
                }

                await Send(OpenAiJson.Done);
            }
            catch (OperationCanceledException)
            {
                // The client went away or the engine is shutting down: nothing more to send.
            }
            catch (Exception e) when (e is LLama.Exceptions.RuntimeError or InvalidOperationException)
            {
                options.Logger?.LogError(e, "generation failed mid-stream");
                try
                {
                    await Send(OpenAiJson.ErrorEvent(new OpenAiError(500, "Generation failed.", "server_error")));
                }
                catch (OperationCanceledException)
                {
                }
            }
            finally
            {
                release();
                await pipe.Writer.CompleteAsync();
                abort.Dispose();
            }
        }, CancellationToken.None);
        _ = Track(producer);
        return new BackendResponse(200, "text/event-stream; charset=utf-8", pipe.Reader.AsStream());
    }

    private sealed record Plan(CompletionRequest Request, LLamaToken[] PromptTokens, int MaxTokens);

    /// <summary>Validates against the model: its id, the chat template, the prompt length and max_tokens.</summary>
    private Plan Prepare(CompletionRequest request)
    {
        if (request.Model != ModelId)
        {
            throw new OpenAiErrorException(OpenAiError.ModelNotFound(request.Model));
        }

        var prompt = request.Kind == CompletionKind.Chat ? ApplyTemplate(request.Messages) : request.Prompt;
        var tokens = weights.Tokenize(prompt, add_bos: true, special: request.Kind == CompletionKind.Chat, Encoding.UTF8);
        var param = request.Kind == CompletionKind.Chat ? "messages" : "prompt";
        if (tokens.Length >= ContextSize)
        {
            throw new OpenAiErrorException(OpenAiError.Invalid(
                $"This model's maximum context length is {ContextSize} tokens. However, your {param} resulted in {tokens.Length} tokens. Please reduce the length of the {param}.",
                param,
                "context_length_exceeded"));
        }

        var room = ContextSize - tokens.Length;
        if (request.MaxTokens is { } asked && asked > room)
        {
            throw new OpenAiErrorException(OpenAiError.Invalid(
                $"This model's maximum context length is {ContextSize} tokens. However, you requested {tokens.Length + asked} tokens ({tokens.Length} in the {param}, {asked} in the completion). Please reduce the length of the {param} or completion.",
                "max_tokens",
                "context_length_exceeded"));
        }

        var max = request.MaxTokens ?? (request.Kind == CompletionKind.Chat ? room : Math.Min(16, room));
        return new Plan(request, tokens, max);
    }

    private string ApplyTemplate(IReadOnlyList<ChatMessage> messages)
    {
        string Render(LLamaTemplate template)
        {
            foreach (var m in messages)
            {
                template.Add(m.Role, m.Content);
            }

            return Encoding.UTF8.GetString(template.Apply());
        }

        if (hasTemplate)
        {
            try
            {
                return Render(new LLamaTemplate(weights, strict: true) { AddAssistant = true });
            }
            catch (Exception e) when (e is LLama.Exceptions.RuntimeError or InvalidOperationException or ArgumentException)
            {
                options.Logger?.LogWarning("the model's chat template is not one llama.cpp can apply ({Reason}); using ChatML", e.Message);
            }
        }

        return Render(new LLamaTemplate("chatml") { AddAssistant = true });
    }

    /// <summary>The token loop: decode the prompt, then sample, detokenize, apply stop sequences, until a stop.</summary>
    private async Task<(string Finish, int Tokens)> GenerateAsync(Plan plan, Func<string, ValueTask<bool>> emit, CancellationToken cancellationToken)
    {
        // Contexts (KV cache and buffers) are reused across requests: at most MaxConcurrency exist, one per slot.
        var context = idleContexts.TryTake(out var idle) ? idle : weights.CreateContext(contextParams, options.Logger);
        try
        {
            return await GenerateAsync(context, plan, emit, cancellationToken);
        }
        finally
        {
            context.NativeHandle.MemoryClear(data: true);
            idleContexts.Add(context);
        }
    }

    private async Task<(string Finish, int Tokens)> GenerateAsync(LLamaContext context, Plan plan, Func<string, ValueTask<bool>> emit, CancellationToken cancellationToken)
    {
        var request = plan.Request;
        var batch = new LLamaBatch();
        var (result, _, past) = await context.DecodeAsync(plan.PromptTokens.ToList(), LLamaSeqId.Zero, batch, 0, cancellationToken);
        if (result != DecodeResult.Ok)
        {
            throw new InvalidOperationException($"llama_decode failed on the prompt: {result}");
        }

        var seed = request.Seed is { } s ? unchecked((uint)s ^ (uint)(s >> 32)) : options.NewSeed();
        using var sampler = new DefaultSamplingPipeline
        {
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = 0,
            MinP = 0,
            TypicalP = 1,
            RepeatPenalty = 1,
            FrequencyPenalty = request.FrequencyPenalty,
            PresencePenalty = request.PresencePenalty,
            Seed = seed,
        };
        var decoder = new StreamingTokenDecoder(Encoding.UTF8, weights);
        var stop = new StopSequenceFilter(request.Stop);
        var generated = 0;
        var finish = "length";
        while (generated < plan.MaxTokens)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var token = sampler.Sample(context.NativeHandle, batch.TokenCount - 1);
            generated++;
            Interlocked.Increment(ref tokensTotal);
            if (token.IsEndOfGeneration(weights.Vocab))
            {
                finish = "stop";
                break;
            }

            decoder.Add(token);
            var piece = stop.Push(decoder.Read());
            if (piece.Length > 0 && !await emit(piece))
            {
                throw new OperationCanceledException("the consumer stopped reading");
            }

            if (stop.Stopped)
            {
                finish = "stop";
                break;
            }

            if (past >= ContextSize || generated >= plan.MaxTokens)
            {
                break;
            }

            batch.Clear();
            batch.Add(token, past++, LLamaSeqId.Zero, true);
            // Synchronous on purpose: one token's decode is short, and DecodeAsync would hop to the thread pool per token.
            var code = context.Decode(batch);
            if (code != DecodeResult.Ok)
            {
                throw new InvalidOperationException($"llama_decode failed: {code}");
            }
        }

        var rest = stop.Flush();
        if (rest.Length > 0)
        {
            await emit(rest);
        }

        return (finish, generated);
    }

    private async Task<T> Track<T>(Task<T> task)
    {
        running.TryAdd(task, true);
        try
        {
            return await task;
        }
        finally
        {
            running.TryRemove(task, out _);
        }
    }

    private async Task Track(Task task)
    {
        running.TryAdd(task, true);
        try
        {
            await task;
        }
        finally
        {
            running.TryRemove(task, out _);
        }
    }

    private BackendResponse Error(OpenAiError error)
    {
        if (error.Status != 429)
        {
            Interlocked.Increment(ref errorsTotal);
        }

        return Json(error.Status, error.ToJson());
    }

    private static BackendResponse Json(int status, byte[] body) =>
        new(status, "application/json", new MemoryStream(body, writable: false));

    private BackendResponse Metrics()
    {
        var text = new StringBuilder()
            .Append("# TYPE privateml_embedded_requests_total counter\n")
            .Append($"privateml_embedded_requests_total {Interlocked.Read(ref requestsTotal)}\n")
            .Append("# TYPE privateml_embedded_rejected_total counter\n")
            .Append($"privateml_embedded_rejected_total {Interlocked.Read(ref rejectedTotal)}\n")
            .Append("# TYPE privateml_embedded_errors_total counter\n")
            .Append($"privateml_embedded_errors_total {Interlocked.Read(ref errorsTotal)}\n")
            .Append("# TYPE privateml_embedded_generated_tokens_total counter\n")
            .Append($"privateml_embedded_generated_tokens_total {Interlocked.Read(ref tokensTotal)}\n")
            .Append("# TYPE privateml_embedded_admitted gauge\n")
            .Append($"privateml_embedded_admitted {Volatile.Read(ref admitted)}\n");
        return new BackendResponse(200, "text/plain; version=0.0.4", new MemoryStream(Encoding.UTF8.GetBytes(text.ToString()), writable: false));
    }

    /// <summary>Stops new work, cancels running generations, waits for them, then frees the model.</summary>
    public async ValueTask DisposeAsync()
    {
        if (shutdown.IsCancellationRequested)
        {
            return;
        }

        await shutdown.CancelAsync();
        try
        {
            await Task.WhenAll(running.Keys).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException or InvalidOperationException)
        {
        }

        while (idleContexts.TryTake(out var context))
        {
            context.Dispose();
        }

        weights.Dispose();
        slots.Dispose();
        shutdown.Dispose();
    }
}
