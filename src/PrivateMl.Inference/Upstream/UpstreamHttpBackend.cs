using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Http.Headers;

namespace PrivateMl.Inference.Upstream;

/// <summary>Settings of <see cref="UpstreamHttpBackend"/>.</summary>
public sealed class UpstreamHttpBackendOptions
{
    /// <summary>The upstream's origin, e.g. <c>http://127.0.0.1:8000</c>; request paths are appended to it.</summary>
    public required Uri BaseAddress { get; init; }

    /// <summary>Time allowed to connect.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time allowed from sending the request to the response headers (model queueing counts).</summary>
    public TimeSpan ResponseHeadersTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Most pooled connections to the upstream.</summary>
    public int MaxConnections { get; init; } = 4096;

    /// <summary>Optional bearer token the upstream wants (never the client's).</summary>
    public string? ApiKey { get; init; }
}

/// <summary>
/// An upstream OpenAI-compatible HTTP server (vLLM) as an <see cref="IInferenceBackend"/>: one pooled
/// <see cref="SocketsHttpHandler"/> for the process, requests sent with the client's exact bytes, responses returned
/// as soon as the headers arrive (<see cref="HttpCompletionOption.ResponseHeadersRead"/>) with the body unbuffered.
/// </summary>
public sealed class UpstreamHttpBackend : IUpstreamBackend
{
    private const int MaxCachedTargets = 32;

    private readonly HttpMessageInvoker _invoker;
    private readonly UpstreamHttpBackendOptions _options;
    private readonly string _basePath;

    // The gateway asks for the same few paths and content type every time; building the Uri and parsing the media
    // type anew cost tens of microseconds on a core that idled since the last request, before the request leaves.
    private readonly ConcurrentDictionary<string, Uri> _targets = new(StringComparer.Ordinal);
    private readonly string? _authorization;
    private int _targetCount;
    private volatile string? _checkedContentType;

    public UpstreamHttpBackend(UpstreamHttpBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BaseAddress.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException("the upstream address must be http or https", nameof(options));
        }

        _options = options;
        _basePath = options.BaseAddress.AbsolutePath.TrimEnd('/');
        _authorization = options.ApiKey is { Length: > 0 } key ? "Bearer " + key : null;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            MaxConnectionsPerServer = options.MaxConnections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            PooledConnectionLifetime = TimeSpan.FromMinutes(30),
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            UseProxy = false,
            AllowAutoRedirect = false,
            EnableMultipleHttp2Connections = true,
        };
        _invoker = new HttpMessageInvoker(handler, disposeHandler: true);
    }

    public string Name => "upstream";

    public Uri BaseAddress => _options.BaseAddress;

    public async Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var message = new HttpRequestMessage(request.Method, TargetOf(request.PathAndQuery)) { Version = HttpVersion.Version11 };
        if (request.Method != HttpMethod.Get && request.Method != HttpMethod.Head)
        {
            message.Content = new ReadOnlyMemoryContent(request.Body);
            if (IsValidContentType(request.ContentType))
            {
                message.Content.Headers.TryAddWithoutValidation("Content-Type", request.ContentType);
            }
        }

        if (_authorization is not null)
        {
            message.Headers.TryAddWithoutValidation("Authorization", _authorization);
        }

        // The headers timeout and the caller's cancellation are attached after the send has put the request on the
        // wire: a timer and a link cost tens of microseconds on a core that idled, and they only matter later.
        cancellationToken.ThrowIfCancellationRequested();
        using var headersTimeout = new CancellationTokenSource();
        var link = default(CancellationTokenRegistration);
        HttpResponseMessage response;
        try
        {
            var sending = _invoker.SendAsync(message, headersTimeout.Token);
            link = cancellationToken.UnsafeRegister(static source => ((CancellationTokenSource)source!).Cancel(), headersTimeout);
            headersTimeout.CancelAfter(_options.ResponseHeadersTimeout);
            response = await sending;
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackendUnavailableException($"the upstream sent no response headers within {_options.ResponseHeadersTimeout.TotalSeconds:0.###} s", e);
        }
        catch (OperationCanceledException e)
        {
            // Cancelled by the caller: the caller's token, as a linked source would have reported it.
            throw new OperationCanceledException(e.Message, e, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new BackendUnavailableException($"the upstream could not be reached: {e.Message}", e);
        }
        finally
        {
            link.Dispose();
        }

        try
        {
            var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            return new BackendResponse((int)response.StatusCode, response.Content.Headers.ContentType?.ToString(), body, new ResponseOwner(response));
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            response.Dispose();
            throw new BackendUnavailableException($"the upstream broke the connection: {e.Message}", e);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    public void Dispose() => _invoker.Dispose();

    /// <summary>The upstream URL of a path; the first <see cref="MaxCachedTargets"/> distinct paths are kept.</summary>
    private Uri TargetOf(string pathAndQuery)
    {
        if (_targets.TryGetValue(pathAndQuery, out var known))
        {
            return known;
        }

        var uri = new Uri(_options.BaseAddress, _basePath + pathAndQuery);
        // A counter, not ConcurrentDictionary.Count (which takes every lock); a race may keep a few more than the bound.
        if (Volatile.Read(ref _targetCount) < MaxCachedTargets && _targets.TryAdd(pathAndQuery, uri))
        {
            Interlocked.Increment(ref _targetCount);
        }

        return uri;
    }

    /// <summary>A content type is forwarded only when it parses as a media type; the last one that did is remembered.</summary>
    private bool IsValidContentType([NotNullWhen(true)] string? contentType)
    {
        if (contentType is null)
        {
            return false;
        }

        if (string.Equals(contentType, _checkedContentType, StringComparison.Ordinal))
        {
            return true;
        }

        if (!MediaTypeHeaderValue.TryParse(contentType, out _))
        {
            return false;
        }

        _checkedContentType = contentType;
        return true;
    }

    private sealed class ResponseOwner(HttpResponseMessage response) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            response.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
