namespace PrivateMl.Inference;

/// <summary>
/// An OpenAI-compatible inference backend as the gateway sees it: bytes in, bytes out. The gateway signs the exact
/// bytes it relays, so a backend never re-shapes what the client sent and returns its response body as a stream that
/// the gateway copies chunk by chunk (SSE framing included). Implemented by the upstream HTTP server (vLLM) and by the
/// embedded engine.
/// </summary>
public interface IInferenceBackend
{
    /// <summary>Short name for logs and /v1/models ownership, e.g. "upstream" or "embedded".</summary>
    string Name { get; }

    /// <summary>
    /// Sends one request (e.g. POST /v1/chat/completions, GET /v1/models, GET /metrics). Failures to reach the
    /// backend surface as <see cref="BackendUnavailableException"/>; HTTP-level errors come back as a response with
    /// their status and body.
    /// </summary>
    Task<BackendResponse> SendAsync(BackendRequest request, CancellationToken cancellationToken);
}

/// <summary>One request to a backend; <see cref="Body"/> holds the exact bytes the client sent.</summary>
public sealed record BackendRequest(HttpMethod Method, string PathAndQuery, ReadOnlyMemory<byte> Body, string? ContentType = "application/json");

/// <summary>A backend's answer. The caller owns it and must dispose it (that releases the upstream connection).</summary>
public sealed class BackendResponse(int statusCode, string? contentType, Stream body, IAsyncDisposable? owner = null) : IAsyncDisposable
{
    public int StatusCode { get; } = statusCode;

    public string? ContentType { get; } = contentType;

    /// <summary>The response body as it arrives; for SSE the raw event stream.</summary>
    public Stream Body { get; } = body;

    public bool IsEventStream => ContentType?.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase) == true;

    public async ValueTask DisposeAsync()
    {
        await Body.DisposeAsync();
        if (owner is not null)
        {
            await owner.DisposeAsync();
        }
    }
}

/// <summary>The backend could not be reached or broke the connection before a response began.</summary>
public sealed class BackendUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
