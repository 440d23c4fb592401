using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Inference.Upstream;
using PrivateMl.Testing;

namespace PrivateMl.Inference.Tests.Upstream;

/// <summary>
/// What every upstream backend does, run against a real loopback server (Kestrel) that reports what it received: the
/// exact path under the configured base, the content type as sent (or none when it is not a media type), the API key,
/// the body as the server streamed it, and the two ways a wait for the response headers ends early — the headers
/// timeout (a typed backend error) and the caller's cancellation. Each backend runs these through a derived class.
/// </summary>
public abstract class UpstreamBackendContract : IAsyncLifetime
{
    private readonly ConcurrentQueue<Seen> _seen = new();
    private readonly ConcurrentQueue<IDisposable> _backends = new();
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebApplication _server = null!;

    public async ValueTask InitializeAsync()
    {
        _server = await LoopbackServer.ServeAsync(async context =>
        {
            _seen.Enqueue(new Seen(context.Request.Path.Value!, context.Request.Headers.ContentType.ToString(), context.Request.Headers.Authorization.ToString()));
            if (context.Request.Path.Value!.EndsWith("/hold", StringComparison.Ordinal))
            {
                await _release.Task.WaitAsync(context.RequestAborted);
            }

            if (context.Request.Path.Value!.EndsWith("/stream", StringComparison.Ordinal))
            {
                // Written and flushed piece by piece, so the body arrives in as many chunks of differing sizes.
                context.Response.ContentType = "text/event-stream";
                foreach (var piece in StreamedPieces)
                {
                    await context.Response.WriteAsync(piece, context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }

                return;
            }

            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync("ok");
        });
    }

    public async ValueTask DisposeAsync()
    {
        _release.TrySetResult();
        foreach (var backend in _backends)
        {
            backend.Dispose();
        }

        await _server.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    private static IEnumerable<string> StreamedPieces =>
        Enumerable.Range(0, 64).Select(i => $"data: {i} {new string((char)('a' + (i % 26)), i * 97 % 5000)}\n\n");

    /// <summary>The backend under test, over <paramref name="options"/>.</summary>
    protected abstract IInferenceBackend CreateBackend(UpstreamHttpBackendOptions options);

    [Theory]
    [InlineData("", "/v1/chat/completions", "/v1/chat/completions")]
    [InlineData("prefix/", "/v1/completions", "/prefix/v1/completions")]
    [InlineData("prefix", "/v1/models", "/prefix/v1/models")]
    public async Task Requests_GoToThePathUnderTheBase(string basePath, string path, string expected)
    {
        var backend = Backend(basePath);

        // Twice: the second request takes the remembered target.
        for (var i = 0; i < 2; i++)
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Post, path, "{}"u8.ToArray()), TestContext.Current.CancellationToken);
            Assert.Equal(200, response.StatusCode);
        }

        Assert.All(_seen, seen => Assert.Equal(expected, seen.Path));
        Assert.Equal(2, _seen.Count);
    }

    [Fact]
    public async Task ContentTypes_AreForwardedAsSent_AndOneThatIsNoMediaTypeIsDropped()
    {
        var backend = Backend("");
        string?[] sent = ["application/json; charset=utf-8", "application/json", "this is not a media type", "application/json; charset=utf-8", null];
        foreach (var type in sent)
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions", "{}"u8.ToArray(), type), TestContext.Current.CancellationToken);
            Assert.Equal(200, response.StatusCode);
        }

        Assert.Equal(["application/json; charset=utf-8", "application/json", "", "application/json; charset=utf-8", ""], _seen.Select(s => s.ContentType));
    }

    [Theory]
    [InlineData("upstream-key-1", "Bearer upstream-key-1")]
    [InlineData(null, "")]
    [InlineData("", "")]
    public async Task TheUpstreamApiKey_IsSentOnEveryRequest_AndNothingWithoutOne(string? apiKey, string expected)
    {
        var backend = Backend("", apiKey: apiKey);
        for (var i = 0; i < 2; i++)
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions", "{}"u8.ToArray()), TestContext.Current.CancellationToken);
            Assert.Equal(200, response.StatusCode);
        }

        Assert.Equal([expected, expected], _seen.Select(s => s.Authorization));
    }

    [Fact]
    public async Task TheResponse_CarriesTheStatusContentTypeAndTheBodyAsStreamed()
    {
        var backend = Backend("");

        // Twice: the second response comes on whatever connection the first left behind.
        for (var i = 0; i < 2; i++)
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/stream", "{}"u8.ToArray()), TestContext.Current.CancellationToken);
            using var reader = new StreamReader(response.Body);

            Assert.Equal(200, response.StatusCode);
            Assert.True(response.IsEventStream);
            Assert.Equal(string.Concat(StreamedPieces), await reader.ReadToEndAsync(TestContext.Current.CancellationToken));
        }
    }

    [Fact]
    public async Task NoHeadersWithinTheTimeout_IsABackendError()
    {
        var backend = Backend("", headersTimeout: TimeSpan.FromMilliseconds(200));
        var e = await Assert.ThrowsAsync<BackendUnavailableException>(() =>
            backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/hold", "{}"u8.ToArray()), TestContext.Current.CancellationToken));
        Assert.Contains("no response headers within 0.2 s", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CallerCancellingTheWait_IsTheCallersCancellation()
    {
        var backend = Backend("");
        using var caller = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var sending = backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/hold", "{}"u8.ToArray()), caller.Token);
        await WaitUntilAsync(() => !_seen.IsEmpty);
        await caller.CancelAsync();

        var e = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        Assert.Equal(caller.Token, e.CancellationToken);
    }

    [Fact]
    public async Task AnAlreadyCancelledCaller_SendsNothing()
    {
        var backend = Backend("");
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/completions", "{}"u8.ToArray()), cancelled.Token));

        // A request that did go out would be seen right after; give it a real chance to arrive.
        await using var probe = await backend.SendAsync(new BackendRequest(HttpMethod.Post, "/v1/probe", "{}"u8.ToArray()), TestContext.Current.CancellationToken);
        Assert.Equal(["/v1/probe"], _seen.Select(s => s.Path));
    }

    private IInferenceBackend Backend(string basePath, TimeSpan? headersTimeout = null, string? apiKey = null)
    {
        var backend = CreateBackend(new UpstreamHttpBackendOptions
        {
            BaseAddress = new Uri(_server.BaseAddress(), basePath),
            ResponseHeadersTimeout = headersTimeout ?? TimeSpan.FromMinutes(1),
            ApiKey = apiKey,
        });
        _backends.Enqueue((IDisposable)backend);
        return backend;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }

    private sealed record Seen(string Path, string ContentType, string Authorization);
}
