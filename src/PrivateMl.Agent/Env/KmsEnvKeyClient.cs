using System.Net.Http.Headers;
using System.Text;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Env;

/// <summary>
/// Fetches an app's env-encryption public key from a KMS as dstack's vmm-cli.py does (dstack.md §7.1):
/// <c>POST &lt;kms&gt;/prpc/GetAppEnvEncryptPubKey?json</c> with <c>{"app_id":"&lt;hex&gt;"}</c>. No authentication; the
/// answer is trusted only after <see cref="AppEnvEncryptPublicKey.Verify"/> against the client's trusted KMS keys.
/// </summary>
public sealed class KmsEnvKeyClient(HttpClient http)
{
    /// <summary>
    /// The KMS answer, parsed. <paramref name="kmsUrl"/> is the KMS base URL (a trailing <c>/prpc</c> is accepted).
    /// </summary>
    /// <exception cref="HttpRequestException">Transport failure or a non-2xx answer (the KMS's <c>{"error"}</c> text included).</exception>
    /// <exception cref="AttestationException">The answer is not a well-formed public-key response.</exception>
    public async Task<AppEnvEncryptPublicKey> GetAppEnvEncryptPubKeyAsync(Uri kmsUrl, ReadOnlyMemory<byte> appId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kmsUrl);
        using var content = new StringContent($"{{\"app_id\":\"{Convert.ToHexStringLower(appId.Span)}\"}}", Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await http.PostAsync(MethodUri(kmsUrl, "GetAppEnvEncryptPubKey"), content, cancellationToken);
        var body = await ReadBoundedAsync(response.Content, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            var text = Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 512)));
            throw new HttpRequestException($"KMS answered {(int)response.StatusCode} to GetAppEnvEncryptPubKey: {text}", null, response.StatusCode);
        }

        return AppEnvEncryptPublicKey.Parse(body);
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

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > AppEnvEncryptPublicKey.MaxJsonBytes)
        {
            throw new AttestationException(ErrorCode.MalformedInput, $"the KMS answer is {content.Headers.ContentLength} bytes; at most {AppEnvEncryptPublicKey.MaxJsonBytes} are accepted");
        }

        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[AppEnvEncryptPublicKey.MaxJsonBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
        {
            length += read;
        }

        if (length > AppEnvEncryptPublicKey.MaxJsonBytes)
        {
            throw new AttestationException(ErrorCode.MalformedInput, $"the KMS answer is over {AppEnvEncryptPublicKey.MaxJsonBytes} bytes");
        }

        return buffer[..length];
    }
}
