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
public sealed class UpstreamHttpBackend : IInferenceBackend, IDisposable
{
    private readonly HttpMessageInvoker _invoker;
    private readonly UpstreamHttpBackendOptions _options;
    private readonly string _basePath;

    public UpstreamHttpBackend(UpstreamHttpBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BaseAddress.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException("the upstream address must be http or https", nameof(options));
        }

        _options = options;
        _basePath = options.BaseAddress.AbsolutePath.TrimEnd('/');
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
        var uri = new Uri(_options.BaseAddress, _basePath + request.PathAndQuery);
        using var message = new HttpRequestMessage(request.Method, uri) { Version = HttpVersion.Version11 };
        if (request.Method != HttpMethod.Get && request.Method != HttpMethod.Head)
        {
            message.Content = new ReadOnlyMemoryContent(request.Body);
            if (request.ContentType is not null && MediaTypeHeaderValue.TryParse(request.ContentType, out var type))
            {
                message.Content.Headers.ContentType = type;
            }
        }

        if (_options.ApiKey is { Length: > 0 } key)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        using var headersTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        headersTimeout.CancelAfter(_options.ResponseHeadersTimeout);
        HttpResponseMessage response;
        try
        {
            response = await _invoker.SendAsync(message, headersTimeout.Token);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackendUnavailableException($"the upstream sent no response headers within {_options.ResponseHeadersTimeout.TotalSeconds:0.###} s", e);
        }
        catch (HttpRequestException e)
        {
            throw new BackendUnavailableException($"the upstream could not be reached: {e.Message}", e);
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

    private sealed class ResponseOwner(HttpResponseMessage response) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            response.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
