using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Env;
using PrivateMl.Attestation.Verification;
using PrivateMl.Vmm.Hosting;

namespace PrivateMl.Vmm.Client;

/// <summary>
/// A client of the VMM's RPC surface, as vmm-cli.py speaks it: every call is <c>POST &lt;url&gt;/prpc/&lt;Method&gt;?json</c>
/// with a JSON body; a non-2xx answer carries <c>{"error": …}</c> and becomes a <see cref="VmmException"/>.
/// </summary>
public sealed class VmmClient(HttpClient http, Uri baseUrl)
{
    private const int MaxResponseBytes = 16 * 1024 * 1024;

    /// <summary>Sent to the VMM only — never to a KMS reached directly (<c>--kms-url</c>), which must not learn the VMM's credentials.</summary>
    private AuthenticationHeaderValue? authorization;

    public Uri BaseUrl { get; } = baseUrl ?? throw new ArgumentNullException(nameof(baseUrl));

    /// <summary>Sends <c>Authorization: Bearer</c> (vmm-cli's <c>--token</c> / <c>DSTACK_VMM_TOKEN</c>, for a VMM with <c>[auth]</c> enabled).</summary>
    public void UseBearerToken(string token) => authorization = new AuthenticationHeaderValue("Bearer", token);

    /// <summary>Adds HTTP Basic credentials (vmm-cli's --auth-user/--auth-password, for a fronting proxy).</summary>
    public void UseBasicAuth(string user, string password) =>
        authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    public async Task<TResponse> CallAsync<TResponse>(string method, object? request, CancellationToken cancellationToken = default)
    {
        var bytes = await CallRawAsync(method, request, cancellationToken);
        try
        {
            return JsonSerializer.Deserialize<TResponse>(bytes, VmmJson.Options) ?? throw new VmmException(VmmErrorCode.Upstream, $"{method} answered null");
        }
        catch (JsonException e)
        {
            throw new VmmException(VmmErrorCode.Upstream, $"{method}: malformed answer: {e.Message}");
        }
    }

    public async Task<byte[]> CallRawAsync(string method, object? request, CancellationToken cancellationToken = default)
    {
        using var content = new ByteArrayContent(request is null ? [] : JsonSerializer.SerializeToUtf8Bytes(request, request.GetType(), VmmJson.Options));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(BaseUrl, $"prpc/{method}?json")) { Content = content };
            message.Headers.Authorization = authorization;
            response = await http.SendAsync(message, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new VmmException(VmmErrorCode.Upstream, $"cannot reach the VMM at {BaseUrl}: {e.Message}");
        }

        using (response)
        {
            var body = await ReadBounded(response, cancellationToken);
            if (response.StatusCode == System.Net.HttpStatusCode.Unauthorized)
            {
                throw new VmmException(VmmErrorCode.Upstream, $"the VMM at {BaseUrl} refused the request: {ErrorText(body) ?? "unauthorized"}");
            }

            if (!response.IsSuccessStatusCode)
            {
                throw new VmmException(VmmErrorCode.Upstream, ErrorText(body) ?? $"{method}: HTTP {(int)response.StatusCode}");
            }

            return body;
        }
    }

    /// <summary><c>GET /logs</c>: copies the log text to <paramref name="output"/> (until the VM ends when following).</summary>
    public async Task LogsAsync(string id, int lines, bool follow, TextWriter output, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        var uri = new Uri(BaseUrl, $"logs?id={Uri.EscapeDataString(id)}&follow={(follow ? "true" : "false")}&ansi=false&lines={lines}");
        using var message = new HttpRequestMessage(HttpMethod.Get, uri);
        message.Headers.Authorization = authorization;
        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            var text = (await response.Content.ReadAsStringAsync(cancellationToken)).Trim();
            throw new VmmException(response.StatusCode == System.Net.HttpStatusCode.Unauthorized ? VmmErrorCode.Upstream : VmmErrorCode.UnknownVm, text.Length > 2000 ? text[..2000] : text);
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var buffer = new char[8192];
        int read;
        while ((read = await reader.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            await output.FlushAsync(cancellationToken);
        }
    }

    /// <summary>
    /// The env-encryption public key for <paramref name="appId"/>: from <paramref name="kmsUrl"/> directly when given
    /// (<c>POST &lt;kms&gt;/prpc/GetAppEnvEncryptPubKey?json</c>), else through the VMM. The KMS signature must recover a
    /// signer; when <paramref name="trustedSigners"/> is non-empty the signer must be one of them (vmm-cli's whitelist).
    /// </summary>
    public async Task<(byte[] PublicKey, byte[] Signer)> EnvPublicKeyAsync(string appId, string? kmsUrl, IReadOnlyList<byte[]> trustedSigners, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(trustedSigners);
        var request = new Dictionary<string, string> { ["app_id"] = appId };
        byte[] body;
        if (kmsUrl is null)
        {
            body = await CallRawAsync("GetAppEnvEncryptPubKey", request, cancellationToken);
        }
        else
        {
            using var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(request));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            try
            {
                using var response = await KmsHttp.Value.PostAsync(new Uri(new Uri(kmsUrl.TrimEnd('/') + "/"), "prpc/GetAppEnvEncryptPubKey?json"), content, cancellationToken);
                body = await ReadBounded(response, cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    throw new VmmException(VmmErrorCode.Upstream, $"KMS {kmsUrl}: {ErrorText(body) ?? $"HTTP {(int)response.StatusCode}"}");
                }
            }
            catch (HttpRequestException e)
            {
                throw new VmmException(VmmErrorCode.Upstream, $"cannot reach the KMS at {kmsUrl}: {e.Message}");
            }
        }

        AppEnvEncryptPublicKey key;
        try
        {
            key = AppEnvEncryptPublicKey.Parse(body);
        }
        catch (AttestationException e)
        {
            throw new VmmException(VmmErrorCode.Upstream, $"GetAppEnvEncryptPubKey: {e.Message}");
        }

        var appIdBytes = Compose.Hex.Decode(appId, "app_id");
        var result = key.Verify(appIdBytes, trustedSigners, now);
        if (result.Signer is null)
        {
            throw new VmmException(VmmErrorCode.Upstream, $"the KMS's env public key is not validly signed: {result.Reason}");
        }

        if (trustedSigners.Count > 0 && !result.Accepted)
        {
            throw new VmmException(VmmErrorCode.Upstream, $"the KMS's env public key is refused: {result.Reason}");
        }

        if (trustedSigners.Count == 0 && result.Code is not null and not ErrorCode.EnvPublicKeySignerUntrusted)
        {
            throw new VmmException(VmmErrorCode.Upstream, $"the KMS's env public key is refused: {result.Reason}");
        }

        return (key.PublicKey, result.Signer);
    }

    /// <summary>dstack's encrypted env blob for these variables (dstack.md §7.2), hex as CreateVm/UpgradeApp carry it.</summary>
    public static string EncryptEnv(IReadOnlyList<KeyValuePair<string, string>> variables, byte[] publicKey, RandomNumberGenerator random)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var plaintext = EnvVariables.Serialize(variables.Select(v => new EnvVariable(v.Key, v.Value)));
        try
        {
            return Convert.ToHexStringLower(EncryptedEnv.Encrypt(plaintext, publicKey, random));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    /// <summary>The whole body, at most <paramref name="limit"/> bytes (else an <see cref="VmmErrorCode.Upstream"/> error).</summary>
    internal static async Task<byte[]> ReadBounded(HttpResponseMessage response, CancellationToken cancellationToken, int limit = MaxResponseBytes)
    {
        if (response.Content.Headers.ContentLength > limit)
        {
            throw new VmmException(VmmErrorCode.Upstream, "the answer is too large");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var memory = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            memory.Write(buffer, 0, read);
            if (memory.Length > limit)
            {
                throw new VmmException(VmmErrorCode.Upstream, "the answer is too large");
            }
        }

        return memory.ToArray();
    }

    /// <summary>The <c>error</c> of a dstack-style <c>{"error": …}</c> answer, or a short non-JSON body as text; else null.</summary>
    internal static string? ErrorText(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) ? e.GetString() : null;
        }
        catch (JsonException)
        {
            return body.Length is > 0 and < 4096 ? Encoding.UTF8.GetString(body).Trim() : null;
        }
    }

    /// <summary>
    /// For --kms-url: a KMS's TLS certificate chains to its own root, which the operator does not know beforehand, so
    /// the server certificate is not checked; the trust decision is the env key's signature by a trusted KMS root key
    /// (as <c>privateml env encrypt</c> without --kms-ca). Separate from the VMM's client, so VMM credentials never go
    /// to a KMS.
    /// </summary>
    private static readonly Lazy<HttpClient> KmsHttp = new(CreateKmsHttpClient);

    /// <summary>A client for a KMS's unauthenticated env-key RPC: any server certificate, 30 s per request (see <see cref="KmsHttp"/>).</summary>
    internal static HttpClient CreateKmsHttpClient() => new(new SocketsHttpHandler
    {
        SslOptions = { RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null },
    })
    { Timeout = TimeSpan.FromSeconds(30) };
}
