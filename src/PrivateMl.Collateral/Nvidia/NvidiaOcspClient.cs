using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral.Nvidia;

/// <summary>
/// Asks OCSP responders about the certificates of GPU device chains (NVIDIA's: <c>http://ocsp.ndis.nvidia.com</c>,
/// the certificates' AIA). For each certificate 1..n−2 of every chain it POSTs a DER request
/// (<c>application/ocsp-request</c>) with a fresh 32-byte nonce and keeps the answer bytes as they came; nothing is
/// verified here (<see cref="GpuEvidenceVerifier"/> verifies them with <see cref="GpuOcsp.VerifyResponse"/>).
/// A responder that cannot be reached, answers an error status or too many bytes gives an exchange with a
/// <see cref="OcspExchange.FetchError"/>, which the verifier reports as <see cref="ErrorCode.OcspResponderUnavailable"/>.
/// </summary>
public sealed class NvidiaOcspClient
{
    /// <summary>NVIDIA's OCSP responder (HTTPS; the certificates' AIA names the same host over HTTP).</summary>
    public static readonly Uri DefaultResponder = new("https://ocsp.ndis.nvidia.com");

    private readonly HttpClient _http;
    private readonly Uri? _responder;
    private readonly RandomNumberGenerator _random;
    private readonly string? _serviceKey;

    /// <param name="http">The caller's client (its timeout applies); never disposed here.</param>
    /// <param name="responder">Send every request here; null uses each certificate's AIA OCSP URL, else <see cref="DefaultResponder"/>.</param>
    /// <param name="random">Source of the request nonces.</param>
    /// <param name="serviceKey">Optional NVIDIA service key, sent as a bearer token.</param>
    public NvidiaOcspClient(HttpClient http, Uri? responder = null, RandomNumberGenerator? random = null, string? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (responder is not null && (!responder.IsAbsoluteUri || (responder.Scheme != Uri.UriSchemeHttps && responder.Scheme != Uri.UriSchemeHttp)))
        {
            throw new ArgumentException($"the OCSP responder must be an absolute http(s) URL, got '{responder}'", nameof(responder));
        }

        _http = http;
        _responder = responder;
        _random = random ?? RandomNumberGenerator.Create();
        _serviceKey = serviceKey;
    }

    /// <summary>One exchange per distinct certificate 1..n−2 of every GPU's chain (chains that do not parse are left out: the verifier reports them).</summary>
    public async Task<GpuOcspResponses> FetchAsync(GpuEvidencePayload payload, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var responses = new GpuOcspResponses();
        foreach (var item in payload.Items)
        {
            GpuCertificateChain chain;
            try
            {
                chain = GpuCertificateChain.Parse(item.CertificateChainPem);
            }
            catch (AttestationException)
            {
                continue;
            }

            using (chain)
            {
                foreach (var i in GpuOcsp.CheckedIndices(chain.Certificates.Count))
                {
                    if (!responses.Contains(chain.Certificates[i]))
                    {
                        responses.Add(await FetchAsync(chain.Certificates[i], chain.Certificates[i + 1], cancellationToken));
                    }
                }
            }
        }

        return responses;
    }

    /// <summary>Asks about <paramref name="subject"/> (issued by <paramref name="issuer"/>); never throws for network or HTTP failures.</summary>
    public async Task<OcspExchange> FetchAsync(X509Certificate2 subject, X509Certificate2 issuer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentNullException.ThrowIfNull(issuer);
        var key = GpuOcspResponses.KeyOf(subject);
        var responder = _responder ?? AiaResponder(subject) ?? DefaultResponder;
        var nonce = new byte[GpuOcsp.NonceSize];
        _random.GetBytes(nonce);
        var request = GpuOcsp.BuildRequest(subject, issuer, nonce);
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, responder) { Content = new ByteArrayContent(request) };
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/ocsp-request");
            message.Headers.Accept.ParseAdd("application/ocsp-response");
            if (_serviceKey is not null)
            {
                message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _serviceKey);
            }

            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return new OcspExchange(key, responder, nonce, null, $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}".TrimEnd());
            }

            if (response.Content.Headers.ContentLength > GpuOcsp.MaxResponseBytes)
            {
                return new OcspExchange(key, responder, nonce, null, $"the answer declares {response.Content.Headers.ContentLength} bytes, over {GpuOcsp.MaxResponseBytes}");
            }

            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var body = await ReadBoundedAsync(stream, GpuOcsp.MaxResponseBytes, cancellationToken);
            return body is null
                ? new OcspExchange(key, responder, nonce, null, $"the answer is larger than {GpuOcsp.MaxResponseBytes} bytes")
                : new OcspExchange(key, responder, nonce, body, null);
        }
        catch (HttpRequestException e)
        {
            return new OcspExchange(key, responder, nonce, null, $"unreachable: {e.Message}");
        }
        catch (IOException e)
        {
            return new OcspExchange(key, responder, nonce, null, $"the answer broke off: {e.Message}");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new OcspExchange(key, responder, nonce, null, "timed out");
        }
    }

    /// <summary>The first OCSP URL in the certificate's Authority Information Access extension, if any.</summary>
    public static Uri? AiaResponder(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        try
        {
            foreach (var aia in certificate.Extensions.OfType<X509AuthorityInformationAccessExtension>())
            {
                foreach (var uri in aia.EnumerateOcspUris())
                {
                    if (Uri.TryCreate(uri, UriKind.Absolute, out var parsed) && (parsed.Scheme == Uri.UriSchemeHttp || parsed.Scheme == Uri.UriSchemeHttps))
                    {
                        return parsed;
                    }
                }
            }
        }
        catch (CryptographicException)
        {
            // A malformed AIA extension: fall back to the default responder.
        }

        return null;
    }

    private static async Task<byte[]?> ReadBoundedAsync(Stream stream, int limit, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
