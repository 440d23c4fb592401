namespace PrivateMl.Gateway;

/// <summary>Where the gateway's signing keys come from.</summary>
public enum SigningKeySource
{
    /// <summary>Fresh random keys made in this process at start (they die with it).</summary>
    Random = 1,

    /// <summary>Keys derived by the guest agent's GetKey (stable across restarts of the same app).</summary>
    Agent = 2,
}

/// <summary>Settings of the gateway, validated once by <see cref="Validate"/> when the host is built.</summary>
public sealed class GatewayOptions
{
    /// <summary>URLs Kestrel listens on (<c>http://127.0.0.1:0</c> picks a free port).</summary>
    public IReadOnlyList<string> ListenUrls { get; set; } = ["http://127.0.0.1:8000"];

    /// <summary>Model name used in the signature store's keys (<c>{model}:chat:{id}</c>, as the seed proxy).</summary>
    public string ModelName { get; set; } = "privateml";

    /// <summary>Largest request body accepted; larger gets 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Most completion requests relayed at once; more get 429.</summary>
    public int MaxConcurrentStreams { get; set; } = 1024;

    /// <summary>Longest wait for the next bytes of an upstream body before the response is aborted.</summary>
    public TimeSpan UpstreamIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Handle requests, and relay each response's first byte, on the thread that completed the socket operation
    /// instead of queueing the work to the thread pool once more (Kestrel's
    /// <c>SocketTransportOptions.UnsafePreferInlineScheduling</c>); later chunks and the signing move to the pool
    /// (<c>Proxy/SocketThread</c>), so a socket thread is held only for a first byte. With
    /// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c> at process start (the upstream's sockets too) the idle
    /// 2-core VM showed a lower added first byte and p99 at 1, 16 and 128 paced streams and ~5 % fewer requests/s when
    /// saturated (docs/gateway-bench.md, Session 9). Off in the library (an in-process backend such as the embedded
    /// engine may do synchronous work in its send); <c>privateml serve</c> turns it on by default and sets the
    /// variable (<c>--inline-io false</c> turns both off).
    /// </summary>
    public bool InlineSocketScheduling { get; set; }

    /// <summary>
    /// Largest non-streaming response body: it is read whole so it goes out with a Content-Length (and its id and usage
    /// are read); a larger upstream body is answered with 502. SSE streams are not bounded by it.
    /// </summary>
    public int MaxObservedBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>
    /// On stop, how long the gateway keeps serving with <c>/ready</c> answering 503 before it closes its listeners, so
    /// a load balancer takes it out of rotation first (the preStop sleep of a rolling update). Zero by default.
    /// </summary>
    public TimeSpan DrainDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// On stop, how long completions in flight may take to finish after the listeners closed; those still running are
    /// then aborted, unsigned, like any response the client did not fully receive.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Whether <c>/ready</c> also asks the model (its <c>GET /v1/models</c>): a gateway whose model is loading or gone
    /// answers 503 <c>upstream_unavailable</c>. On by default.
    /// </summary>
    public bool ReadinessChecksUpstream { get; set; } = true;

    /// <summary>How long one answer of the model's readiness stands before <c>/ready</c> asks again.</summary>
    public TimeSpan ReadinessProbeInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long <c>/ready</c> waits for the model's answer before it counts the model as unavailable.</summary>
    public TimeSpan ReadinessProbeTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long signatures and receipts stay retrievable.</summary>
    public TimeSpan SignatureTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Most signatures kept in memory (the oldest go first); Redis is bounded by its own memory policy.</summary>
    public int MaxStoredSignatures { get; set; } = 1_000_000;

    /// <summary>StackExchange.Redis connection string; null keeps signatures in memory.</summary>
    public string? RedisConnection { get; set; }

    /// <summary>Accepted bearer tokens; empty turns authentication off.</summary>
    public IReadOnlyList<string> Tokens { get; set; } = [];

    /// <summary>Paths served without a token when tokens are configured.</summary>
    public IReadOnlySet<string> PublicPaths { get; set; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "/v1/models", "/v1/metrics", "/health", "/ready", "/.well-known/hpke-keys",
    };

    /// <summary>Other gateways whose reports (over the same nonce) are merged into <c>all_attestations</c>.</summary>
    public IReadOnlyList<Uri> Peers { get; set; } = [];

    /// <summary>Bearer token sent to peers (null sends none).</summary>
    public string? PeerToken { get; set; }

    /// <summary>Time allowed for one peer's report.</summary>
    public TimeSpan PeerTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public SigningKeySource KeySource { get; set; } = SigningKeySource.Random;

    /// <summary>GetKey path prefix for <see cref="SigningKeySource.Agent"/> keys: <c>{prefix}/ecdsa-signing-key</c>, <c>{prefix}/ed25519-signing-key</c>.</summary>
    public string KeyPathPrefix { get; set; } = "privateml-gateway";

    /// <summary>SHA-256 (64 hex) of the served TLS certificate's SubjectPublicKeyInfo, listed in the ACI keyset; null when the gateway serves no TLS.</summary>
    public string? TlsSpkiSha256 { get; set; }

    /// <summary>Domain of the TLS key in the ACI keyset (optional).</summary>
    public string? TlsDomain { get; set; }

    /// <summary>The ACI keyset's <c>subject</c> (naming metadata, e.g. <c>dstack-app://…</c>); null by default.</summary>
    public string? KeysetSubject { get; set; }

    /// <summary>How long the ACI keyset stays valid (its <c>not_after</c>); it is renewed when a third of it is left.</summary>
    public TimeSpan KeysetLifetime { get; set; } = TimeSpan.FromDays(30);

    public void Validate()
    {
        if (TlsSpkiSha256 is not null && (TlsSpkiSha256.Length != 64 || !TlsSpkiSha256.All(Uri.IsHexDigit)))
        {
            throw new ArgumentException("TlsSpkiSha256 must be 64 hex characters");
        }

        if (KeysetLifetime < TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException("KeysetLifetime must be at least a minute (the keyset is renewed when a third of it is left)");
        }

        if (ListenUrls.Count == 0)
        {
            throw new ArgumentException("at least one listen URL is needed");
        }

        if (MaxRequestBodyBytes is < 1 or > int.MaxValue / 2)
        {
            throw new ArgumentException("MaxRequestBodyBytes must be between 1 and 1 GiB");
        }

        if (MaxConcurrentStreams < 1 || MaxStoredSignatures < 1 || MaxObservedBodyBytes < 1024)
        {
            throw new ArgumentException("MaxConcurrentStreams and MaxStoredSignatures must be positive, MaxObservedBodyBytes at least 1024");
        }

        if (ReadinessProbeInterval < TimeSpan.Zero || ReadinessProbeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("ReadinessProbeInterval must not be negative and ReadinessProbeTimeout must be positive");
        }

        if (DrainDelay < TimeSpan.Zero || ShutdownTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException("DrainDelay and ShutdownTimeout must not be negative");
        }

        if (SignatureTtl <= TimeSpan.Zero || UpstreamIdleTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("SignatureTtl and UpstreamIdleTimeout must be positive");
        }

        if (string.IsNullOrWhiteSpace(ModelName) || ModelName.Contains(' ', StringComparison.Ordinal))
        {
            throw new ArgumentException("ModelName must be a non-empty word");
        }

        if (Tokens.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("bearer tokens must not be empty");
        }
    }
}
