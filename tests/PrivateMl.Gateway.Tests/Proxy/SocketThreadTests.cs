using System.Buffers;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Gateway.E2ee;
using PrivateMl.Gateway.Proxy;
using PrivateMl.Inference;
using PrivateMl.Inference.Upstream;

namespace PrivateMl.Gateway.Tests.Proxy;

public sealed class SocketThreadTests
{
    [Fact]
    public async Task Leave_moves_work_from_a_thread_outside_the_pool_onto_the_pool()
    {
        Task<(bool Before, bool After)>? probe = null;
        var socketLike = new Thread(() => probe = ProbeAsync());
        socketLike.Start();
        socketLike.Join();

        var (before, after) = await probe!;

        Assert.False(before);
        Assert.True(after);
    }

    [Fact]
    public async Task Leave_on_a_pool_thread_continues_in_place()
    {
        var sameThread = await Task.Run(async () =>
        {
            var id = Environment.CurrentManagedThreadId;
            await SocketThread.Leave();
            return id == Environment.CurrentManagedThreadId;
        }, TestContext.Current.CancellationToken);

        Assert.True(sameThread);
    }

    [Fact]
    public async Task An_end_to_end_encrypted_request_is_opened_off_the_socket_thread()
    {
        // Opening an ACI request costs a key agreement per encrypted field: a 4 MiB body holds tens of thousands, over
        // a second of CPU that, on a socket thread, every other connection of that thread would wait out.
        using var backend = new UpstreamHttpBackend(new UpstreamHttpBackendOptions { BaseAddress = new Uri("http://127.0.0.1:9/") });
        await using var app = GatewayHost.Build(new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"] }, backend, agent: null);
        var relay = app.Services.GetRequiredService<CompletionRelay>();
        var exchange = new RecordingExchange();
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Body = new MemoryStream("{}"u8.ToArray());
        context.Request.ContentLength = 2;
        context.Response.Body = new MemoryStream();
        context.Features.Set<IE2eeExchange>(exchange);

        Task? handling = null;
        var socketLike = new Thread(() =>
        {
            exchange.MarkCaller();
            handling = relay.HandleAsync(context, "/v1/chat/completions");
        });
        socketLike.Start();
        socketLike.Join();
        await handling!;

        Assert.False(exchange.CallerWasOnPool);
        Assert.True(exchange.OpenedOnPool);
        Assert.Equal(403, context.Response.StatusCode);
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(CompletionRelay.InlineHashBytes, false)]
    [InlineData(CompletionRelay.InlineHashBytes + 1, true)]
    public async Task A_long_request_is_hashed_off_the_socket_thread_and_a_short_one_where_it_was_read(int length, bool onPool)
    {
        // The receipt id is drawn next to the request hash, so the random source sees where that work runs.
        var random = new RecordingRandom();
        await using var app = GatewayHost.Build(
            new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"] },
            new UnreachableBackend(),
            agent: null,
            configureServices: services => services.AddSingleton<RandomNumberGenerator>(random));
        var relay = app.Services.GetRequiredService<CompletionRelay>();
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Body = new MemoryStream(new byte[length]);
        context.Request.ContentLength = length;
        context.Response.Body = new MemoryStream();

        Task? handling = null;
        var socketLike = new Thread(() => handling = relay.HandleAsync(context, "/v1/chat/completions"));
        socketLike.Start();
        socketLike.Join();
        await handling!;

        Assert.Equal(onPool, random.CalledOnPool);
        Assert.Equal(502, context.Response.StatusCode);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_end_to_end_encrypted_answer_is_sealed_off_the_socket_thread(bool stream)
    {
        var backend = new HeldBackend();
        await using var app = GatewayHost.Build(new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"] }, backend, agent: null);
        await app.StartAsync(TestContext.Current.CancellationToken); // makes the signing keys
        var relay = app.Services.GetRequiredService<CompletionRelay>();
        var exchange = new PassThroughExchange();
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Body = new MemoryStream("{}"u8.ToArray());
        context.Request.ContentLength = 2;
        context.Response.Body = new MemoryStream();
        context.Features.Set<IE2eeExchange>(exchange);

        var handling = relay.HandleAsync(context, "/v1/chat/completions");
        await backend.Requested.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        // The upstream's answer completes the relay's wait on this thread, as a socket thread's completion would.
        var answer = stream
            ? new BackendResponse(200, "text/event-stream", new MemoryStream("data: {\"id\":\"c1\"}\n\ndata: [DONE]\n\n"u8.ToArray()))
            : new BackendResponse(200, "application/json", new MemoryStream("{\"id\":\"c1\"}"u8.ToArray()));
        var socketLike = new Thread(() => backend.Answer.SetResult(answer));
        socketLike.Start();
        socketLike.Join();
        await handling;

        Assert.Equal(200, context.Response.StatusCode);
        Assert.NotEmpty(exchange.TransformThreads);
        Assert.All(exchange.TransformThreads, onPool => Assert.True(onPool));
    }

    private static async Task<(bool Before, bool After)> ProbeAsync()
    {
        var before = Thread.CurrentThread.IsThreadPoolThread;
        await SocketThread.Leave();
        return (before, Thread.CurrentThread.IsThreadPoolThread);
    }

    /// <summary>Records where the relay opens the request, then refuses it (so nothing goes upstream).</summary>
    private sealed class RecordingExchange : IE2eeExchange
    {
        public bool? CallerWasOnPool { get; private set; }

        public bool? OpenedOnPool { get; private set; }

        public string Name => "recording";

        public ValueTask<byte[]> OpenRequestAsync(byte[] wireBody, string path, CancellationToken cancellationToken)
        {
            OpenedOnPool = Thread.CurrentThread.IsThreadPoolThread;
            throw new E2eeRefusedException(403, "application/json", "{}"u8.ToArray(), "refused", "refused by the test");
        }

        public void ApplyResponseHeaders(HttpResponse response) => throw new InvalidOperationException("not relayed");

        public IResponseBodyTransform CreateResponseTransform(bool eventStream) => throw new InvalidOperationException("not relayed");

        public byte[] SealError(byte[] errorBody, HttpResponse response, bool fromModel) => errorBody;

        internal void MarkCaller() => CallerWasOnPool = Thread.CurrentThread.IsThreadPoolThread;
    }

    private sealed class RecordingRandom : RandomNumberGenerator
    {
        public bool? CalledOnPool { get; private set; }

        public override void GetBytes(byte[] data) => GetBytes(data.AsSpan());

        public override void GetBytes(Span<byte> data)
        {
            CalledOnPool = Thread.CurrentThread.IsThreadPoolThread;
            Fill(data);
        }
    }

    private sealed class UnreachableBackend : IInferenceBackend
    {
        public string Name => "unreachable";

        public Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken) =>
            Task.FromException<BackendResponse>(new BackendUnavailableException("nothing listens"));
    }

    /// <summary>An upstream whose answer the test gives, on the thread it chooses.</summary>
    private sealed class HeldBackend : IInferenceBackend
    {
        public TaskCompletionSource Requested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<BackendResponse> Answer { get; } = new();

        public string Name => "held";

        public Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken)
        {
            Requested.TrySetResult();
            return Answer.Task;
        }
    }

    /// <summary>An exchange that forwards and answers in clear, noting on which kind of thread each transform ran.</summary>
    private sealed class PassThroughExchange : IE2eeExchange
    {
        public List<bool> TransformThreads { get; } = [];

        public string Name => "pass-through";

        public ValueTask<byte[]> OpenRequestAsync(byte[] wireBody, string path, CancellationToken cancellationToken) => ValueTask.FromResult(wireBody);

        public void ApplyResponseHeaders(HttpResponse response)
        {
        }

        public IResponseBodyTransform CreateResponseTransform(bool eventStream) => new Copy(this);

        public byte[] SealError(byte[] errorBody, HttpResponse response, bool fromModel) => errorBody;

        private sealed class Copy(PassThroughExchange owner) : IResponseBodyTransform
        {
            public void Transform(ReadOnlySpan<byte> upstream, IBufferWriter<byte> output)
            {
                lock (owner.TransformThreads)
                {
                    owner.TransformThreads.Add(Thread.CurrentThread.IsThreadPoolThread);
                }

                output.Write(upstream);
            }

            public void Complete(IBufferWriter<byte> output)
            {
            }
        }
    }
}
