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
        var context = Post("{}"u8.ToArray(), exchange);

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
        var context = Post(new byte[length]);

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
        var context = Post("{}"u8.ToArray(), exchange);

        // Started off the test's synchronization context, so that each wait resumes where it is completed.
        var handling = Task.Run(() => relay.HandleAsync(context, "/v1/chat/completions"), TestContext.Current.CancellationToken);
        await backend.Requested.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        // The headers come first and the body later (as vLLM sends them), each completing the relay's wait on the
        // thread that delivers it, as a socket thread's completion would.
        var body = new HeldStream();
        var answer = new BackendResponse(200, stream ? "text/event-stream" : "application/json", body);
        OnSocketLikeThread(() => backend.Answer.SetResult(answer));
        await body.Waiting.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        OnSocketLikeThread(() => body.Give(stream ? "data: {\"id\":\"c1\"}\n\ndata: [DONE]\n\n"u8.ToArray() : "{\"id\":\"c1\"}"u8.ToArray()));
        OnSocketLikeThread(() => body.Give([]));
        await handling.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        Assert.Equal(200, context.Response.StatusCode);
        Assert.NotEmpty(exchange.TransformThreads);
        Assert.All(exchange.TransformThreads, onPool => Assert.True(onPool));
    }

    /// <summary>A completion request as the relay receives it, with its response kept in memory.</summary>
    private static DefaultHttpContext Post(byte[] body, IE2eeExchange? exchange = null)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.Body = new MemoryStream(body);
        context.Request.ContentLength = body.Length;
        context.Response.Body = new MemoryStream();
        if (exchange is not null)
        {
            context.Features.Set(exchange);
        }

        return context;
    }

    private static void OnSocketLikeThread(Action action)
    {
        var thread = new Thread(() => action());
        thread.Start();
        thread.Join();
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

    /// <summary>
    /// A body whose bytes the test gives on the thread it chooses: a read that has to wait is completed on that thread
    /// (synchronously, as a socket completion is under inline I/O). Giving no bytes ends the body.
    /// </summary>
    private sealed class HeldStream : Stream
    {
        private readonly Queue<byte[]> _given = new();
        private (Memory<byte> Into, TaskCompletionSource<int> Done)? _waiting;
        private bool _ended;

        /// <summary>Set once a read has to wait (the relay waits for the body).</summary>
        public TaskCompletionSource Waiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public void Give(byte[] bytes)
        {
            (Memory<byte> Into, TaskCompletionSource<int> Done)? waiting;
            lock (_given)
            {
                if (bytes.Length == 0)
                {
                    _ended = true;
                }
                else
                {
                    _given.Enqueue(bytes);
                }

                waiting = _waiting;
                _waiting = null;
            }

            if (waiting is { } w)
            {
                w.Done.SetResult(Take(w.Into));
            }
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            lock (_given)
            {
                if (_given.Count > 0 || _ended)
                {
                    return ValueTask.FromResult(Take(buffer));
                }

                var done = new TaskCompletionSource<int>();
                _waiting = (buffer, done);
                Waiting.TrySetResult();
                return new ValueTask<int>(done.Task);
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Take(Memory<byte> into)
        {
            lock (_given)
            {
                if (into.IsEmpty || _given.Count == 0)
                {
                    return 0;
                }

                var next = _given.Dequeue();
                var n = Math.Min(next.Length, into.Length);
                next.AsSpan(0, n).CopyTo(into.Span);
                if (n < next.Length)
                {
                    throw new InvalidOperationException("the test gives less than one read takes");
                }

                return n;
            }
        }
    }
}
