using System.Buffers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Env;

namespace PrivateMl.Agent.Keys;

/// <summary>A KMS answered with an error, or could not be reached, or answered something that is not its JSON.</summary>
public sealed class KmsClientException(string message, int? statusCode = null, Exception? inner = null, string? refusalCode = null) : Exception(message, inner)
{
    /// <summary>HTTP status when the KMS answered (dstack answers errors with 400 and <c>{"error": …}</c>).</summary>
    public int? StatusCode { get; } = statusCode;

    /// <summary>The <c>code</c> of a refusal by a PrivateMl KMS (an <c>ErrorCode</c> name such as <c>KmsQuoteStale</c>); null from dstack.</summary>
    public string? RefusalCode { get; } = refusalCode;

    /// <summary>When several KMS URLs were tried and none gave keys: each URL in the order tried, with why it failed; else empty.</summary>
    public IReadOnlyList<KmsAttempt> Attempts { get; init; } = [];

    /// <summary>
    /// The error for a boot whose every KMS failed: the message names each URL and its reason (and refusal code), in
    /// order; <see cref="StatusCode"/> and <see cref="RefusalCode"/> are those of the first KMS that answered with a
    /// refusal (the unreachable ones have none), and the inner exception is the first failure, as dstack-util reports it.
    /// </summary>
    public static KmsClientException NoKmsGaveKeys(IReadOnlyList<KmsAttempt> attempts)
    {
        ArgumentNullException.ThrowIfNull(attempts);
        ArgumentOutOfRangeException.ThrowIfZero(attempts.Count);
        var refusal = attempts.FirstOrDefault(a => a.Error.RefusalCode is not null)?.Error;
        var reasons = string.Join("; ", attempts.Select(a => $"{a.Url}: {a.Reason}"));
        return new KmsClientException($"no KMS gave app keys ({attempts.Count} tried, in order): {reasons}", refusal?.StatusCode, attempts[0].Error, refusal?.RefusalCode)
        {
            Attempts = attempts,
        };
    }
}

/// <summary>One KMS URL tried for app keys, and why it gave none.</summary>
public sealed record KmsAttempt(Uri Url, KmsClientException Error)
{
    /// <summary>The error's message, and a PrivateMl KMS's refusal code in brackets.</summary>
    public string Reason => Error.RefusalCode is { } code ? $"{Error.Message} [{code}]" : Error.Message;
}

/// <summary>How a <see cref="KmsClient"/> connects.</summary>
public sealed class KmsClientOptions
{
    /// <summary>RA-TLS client certificate with its private key; null for the unauthenticated methods.</summary>
    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>
    /// The KMS root CA the server certificate must chain to (and carry usage <c>kms:rpc</c>); null accepts any server
    /// certificate, as dstack's CVM does for <c>GetTempCaCert</c> before it knows the root.
    /// </summary>
    public X509Certificate2? TrustedRootCa { get; init; }

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest response body read.</summary>
    public int MaxResponseBytes { get; init; } = 4 * 1024 * 1024;
}

/// <summary>
/// A client of dstack's KMS RPC (<c>POST {base}/prpc/{Method}?json</c>, dstack.md §2.2, §9.1) over TLS, with an
/// optional RA-TLS client certificate (the guest agent's <c>GetAppKey</c>, onboarding), or over a transport the caller
/// brings for the unauthenticated methods (the operator's <c>GetAppEnvEncryptPubKey</c>, as vmm-cli.py fetches it).
/// Each instance it makes is one HTTP connection pool; a new instance means a new TLS handshake (what the KMS bench
/// measures).
/// </summary>
public sealed class KmsClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly KmsClientOptions _options;
    private readonly Uri _baseUrl;

    public KmsClient(Uri baseUrl, KmsClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (baseUrl.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"a KMS is reached over https (got {baseUrl})", nameof(baseUrl));
        }

        _options = options ?? new KmsClientOptions();
        _baseUrl = baseUrl;
        _ownsHttp = true;
        var ssl = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = ValidateServer,
            ClientCertificates = _options.ClientCertificate is { } client ? [client] : null,
            LocalCertificateSelectionCallback = _options.ClientCertificate is { } c ? (_, _, _, _, _) => c : null,
        };
        var handler = new SocketsHttpHandler { SslOptions = ssl, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) };
        _http = new HttpClient(handler) { Timeout = _options.Timeout };
    }

    /// <summary>
    /// Over <paramref name="http"/> (not disposed here), whose TLS policy is the caller's (e.g. <c>env encrypt
    /// --kms-ca</c>), for the unauthenticated methods: no RA-TLS client certificate and no root check by this class.
    /// </summary>
    public KmsClient(HttpClient http, Uri baseUrl, int maxResponseBytes = 4 * 1024 * 1024)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(baseUrl);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxResponseBytes);
        _http = http;
        _baseUrl = baseUrl;
        _options = new KmsClientOptions { MaxResponseBytes = maxResponseBytes };
    }

    /// <summary><c>&lt;base&gt;/prpc/&lt;method&gt;?json</c>, without doubling a <c>/prpc</c> the base already ends with.</summary>
    public static Uri MethodUri(Uri kmsUrl, string method)
    {
        ArgumentNullException.ThrowIfNull(kmsUrl);
        var path = kmsUrl.AbsolutePath.TrimEnd('/');
        if (!path.EndsWith("/prpc", StringComparison.Ordinal))
        {
            path += "/prpc";
        }

        return new UriBuilder(kmsUrl) { Path = $"{path}/{method}", Query = "json" }.Uri;
    }

    /// <summary>The server's leaf certificate from the latest handshake (for callers that verify its quote).</summary>
    public X509Certificate2? ServerCertificate { get; private set; }

    /// <summary>Calls <paramref name="method"/> with a JSON body; returns the parsed response (caller disposes).</summary>
    public async Task<JsonDocument> CallAsync(string method, Action<Utf8JsonWriter>? writeBody, CancellationToken cancellationToken)
    {
        var body = await PostAsync(method, writeBody, cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new KmsClientException($"KMS {method} answered a body that is not JSON", 200, e);
        }
    }

    /// <summary>
    /// <c>GetAppEnvEncryptPubKey</c> (dstack.md §7.1), unauthenticated, as vmm-cli.py asks it: <c>{"app_id":"&lt;hex&gt;"}</c>.
    /// The answer is trusted only after <see cref="AppEnvEncryptPublicKey.Verify"/> against the client's trusted KMS keys.
    /// </summary>
    /// <exception cref="KmsClientException">Not reached, a non-2xx answer (the KMS's error text included), or over the size limit.</exception>
    /// <exception cref="PrivateMl.Attestation.Verification.AttestationException">The answer is not a well-formed public-key response.</exception>
    public async Task<AppEnvEncryptPublicKey> GetAppEnvEncryptPubKeyAsync(ReadOnlyMemory<byte> appId, CancellationToken cancellationToken)
    {
        var hex = Convert.ToHexStringLower(appId.Span);
        var body = await PostAsync("GetAppEnvEncryptPubKey", w => w.WriteString("app_id", hex), cancellationToken).ConfigureAwait(false);
        return AppEnvEncryptPublicKey.Parse(body);
    }

    /// <summary>POSTs a JSON body; returns the 2xx answer's bytes, or throws with the KMS's <c>error</c> (and <c>code</c>).</summary>
    private async Task<byte[]> PostAsync(string method, Action<Utf8JsonWriter>? writeBody, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writeBody?.Invoke(writer);
            writer.WriteEndObject();
        }

        using var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var uri = MethodUri(_baseUrl, method);
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsync(uri, content, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw new KmsClientException($"the KMS at {uri.GetLeftPart(UriPartial.Path)} could not be reached: {e.Message}", null, e);
        }

        using (response)
        {
            byte[] body;
            try
            {
                body = await ReadBoundedAsync(response, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new KmsClientException($"the KMS at {uri.GetLeftPart(UriPartial.Path)} broke off its answer: {e.Message}", (int)response.StatusCode, e);
            }

            if (response.IsSuccessStatusCode)
            {
                return body;
            }

            string reason = $"HTTP {(int)response.StatusCode} with a body that is not JSON";
            string? code = null;
            try
            {
                using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 16 });
                var root = document.RootElement;
                if (root.ValueKind == JsonValueKind.Object)
                {
                    reason = root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String ? error.GetString()! : $"HTTP {(int)response.StatusCode}";
                    code = root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                }
            }
            catch (JsonException)
            {
                // Reported with the status.
            }

            throw new KmsClientException($"KMS {method} failed: {reason}", (int)response.StatusCode, null, code);
        }
    }

    /// <summary><c>GetTempCaCert</c>: the temp CA (certificate and key PEM) that signs RA-TLS client certificates, and the root CA PEM.</summary>
    public async Task<(string TempCaCertPem, string TempCaKeyPem, string CaCertPem)> GetTempCaCertAsync(CancellationToken cancellationToken)
    {
        using var doc = await CallAsync("GetTempCaCert", null, cancellationToken).ConfigureAwait(false);
        var root = doc.RootElement;
        return (Text(root, "temp_ca_cert"), Text(root, "temp_ca_key"), Text(root, "ca_cert"));
    }

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    internal static string Text(JsonElement root, string name) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new KmsClientException($"the KMS response has no string '{name}'");

    internal static byte[] Hex(JsonElement root, string name)
    {
        var text = Text(root, name);
        try
        {
            return Convert.FromHexString(text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text);
        }
        catch (FormatException)
        {
            throw new KmsClientException($"the KMS response field '{name}' is not hex");
        }
    }

    private async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > _options.MaxResponseBytes)
        {
            throw new KmsClientException($"the KMS response is larger than {_options.MaxResponseBytes} bytes");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var memory = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (memory.Length + read > _options.MaxResponseBytes)
            {
                throw new KmsClientException($"the KMS response is larger than {_options.MaxResponseBytes} bytes");
            }

            memory.Write(chunk, 0, read);
        }

        return memory.ToArray();
    }

    private bool ValidateServer(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return false;
        }

        var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        ServerCertificate = leaf;
        if (_options.TrustedRootCa is not { } root)
        {
            return true;
        }

        if (RaTlsCertificates.Usage(leaf) != RaTlsCertificates.KmsRpcUsage)
        {
            return false;
        }

        using var verify = new X509Chain();
        verify.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        verify.ChainPolicy.CustomTrustStore.Add(root);
        verify.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        verify.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreWrongUsage;
        return verify.Build(leaf)
            && verify.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(root.RawDataMemory.Span);
    }

    /// <summary>Loads a PEM certificate and PEM key pair.</summary>
    internal static (X509Certificate2 Certificate, ECDsa Key) LoadPemPair(string certificatePem, string keyPem)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(keyPem);
            return (X509Certificate2.CreateFromPem(certificatePem), key);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new KmsClientException($"the KMS sent a certificate or key that is not PEM: {e.Message}", null, e);
        }
    }
}
