namespace PrivateMl.Inference.Upstream;

/// <summary>An upstream inference server as a backend the caller owns (and disposes with its pooled connections).</summary>
public interface IUpstreamBackend : IInferenceBackend, IDisposable
{
    /// <summary>The upstream's origin that request paths are appended to.</summary>
    Uri BaseAddress { get; }
}

/// <summary>Which client carries the gateway's requests to its upstream.</summary>
public enum UpstreamClient
{
    /// <summary><see cref="Sockets"/> for an http upstream, <see cref="HttpClient"/> for https.</summary>
    Auto,

    /// <summary><see cref="Http11SocketBackend"/>: HTTP/1.1 on pooled sockets (plain http only).</summary>
    Sockets,

    /// <summary><see cref="UpstreamHttpBackend"/>: <see cref="System.Net.Http.SocketsHttpHandler"/> (http or https).</summary>
    HttpClient,
}

/// <summary>Makes the upstream backend a <see cref="UpstreamClient"/> choice names.</summary>
public static class UpstreamBackends
{
    public static IUpstreamBackend Create(UpstreamHttpBackendOptions options, UpstreamClient client = UpstreamClient.Auto)
    {
        ArgumentNullException.ThrowIfNull(options);
        return client switch
        {
            UpstreamClient.Auto when options.BaseAddress.Scheme == "http" => new Http11SocketBackend(options),
            UpstreamClient.Sockets => new Http11SocketBackend(options),
            UpstreamClient.Auto or UpstreamClient.HttpClient => new UpstreamHttpBackend(options),
            _ => throw new ArgumentOutOfRangeException(nameof(client), client, "unknown upstream client"),
        };
    }
}
