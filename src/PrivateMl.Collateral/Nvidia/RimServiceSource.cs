using System.Net;
using System.Text.Json;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral.Nvidia;

/// <summary>
/// Fetches RIMs from NVIDIA's RIM service (or a mirror of it): <c>GET {base}/v1/rim/{id}</c> answers
/// <c>{"id","rim","sha256","request_id","rim_format"}</c> with <c>rim</c> the base64 of the signed SWID XML. The XML
/// bytes are returned as decoded; nothing is verified here (the verifier checks the XML signature and its chain).
/// </summary>
public sealed class RimServiceSource : IRimSource
{
    /// <summary>NVIDIA's public RIM service.</summary>
    public static readonly Uri DefaultBaseAddress = new("https://rim.attestation.nvidia.com");

    /// <summary>Any response body larger than this is refused (real RIM responses are tens of KB).</summary>
    public const int DefaultMaxResponseBytes = 1024 * 1024;

    private readonly HttpClient http;
    private readonly string baseUrl;
    private readonly int maxResponseBytes;

    /// <param name="http">The caller's client (its timeout and handler apply); never disposed here.</param>
    /// <param name="baseAddress">Service root; <see cref="DefaultBaseAddress"/> when null. A trailing <c>/v1/rim</c> is tolerated.</param>
    /// <param name="maxResponseBytes">Upper bound on a response body.</param>
    public RimServiceSource(HttpClient http, Uri? baseAddress = null, int maxResponseBytes = DefaultMaxResponseBytes)
    {
        ArgumentNullException.ThrowIfNull(http);
        baseAddress ??= DefaultBaseAddress;
        if (!baseAddress.IsAbsoluteUri || (baseAddress.Scheme != Uri.UriSchemeHttps && baseAddress.Scheme != Uri.UriSchemeHttp))
        {
            throw new ArgumentException($"the RIM service address must be an absolute http(s) URL, got '{baseAddress}'", nameof(baseAddress));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxResponseBytes);
        this.http = http;
        this.maxResponseBytes = maxResponseBytes;
        var text = baseAddress.GetLeftPart(UriPartial.Path).TrimEnd('/');
        if (text.EndsWith("/v1/rim", StringComparison.OrdinalIgnoreCase))
        {
            text = text[..^"/v1/rim".Length];
        }

        baseUrl = text;
    }

    /// <summary>The RIM XML for <paramref name="rimId"/>, or null when the service answers 404.</summary>
    /// <exception cref="AttestationException">The service failed or answered something other than a RIM.</exception>
    public byte[]? Find(string rimId)
    {
        try
        {
            return Fetch(rimId);
        }
        catch (AttestationException ex) when (ex.Code == ErrorCode.RimNotFound)
        {
            return null;
        }
    }

    /// <summary>The RIM XML for <paramref name="rimId"/>.</summary>
    /// <exception cref="AttestationException">
    /// <see cref="ErrorCode.RimNotFound"/> on 404; <see cref="ErrorCode.CollateralUnavailable"/> when the service cannot be
    /// reached or answers another error status; <see cref="ErrorCode.CollateralMalformed"/> when the body is too large,
    /// not the expected JSON, names another ID, or <c>rim</c> is not base64.
    /// </exception>
    public byte[] Fetch(string rimId)
    {
        RimIds.ThrowIfInvalid(rimId);
        var uri = new Uri($"{baseUrl}/v1/rim/{rimId}");
        var body = Get(uri, rimId);
        return ParseResponse(body, rimId, uri);
    }

    internal static byte[] ParseResponse(byte[] body, string rimId, Uri uri)
    {
        string? id;
        string? rim;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri} did not answer a JSON object");
            }

            id = doc.RootElement.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String ? idElement.GetString() : null;
            rim = doc.RootElement.TryGetProperty("rim", out var rimElement) && rimElement.ValueKind == JsonValueKind.String ? rimElement.GetString() : null;
        }
        catch (JsonException ex)
        {
            throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri} answered invalid JSON ({ex.Message})", ex);
        }

        if (rim is null)
        {
            throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri}: the response has no string 'rim' member");
        }

        if (id is not null && !string.Equals(id, rimId, StringComparison.Ordinal))
        {
            throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri} answered the RIM of '{id}'");
        }

        byte[] xml;
        try
        {
            xml = Convert.FromBase64String(rim);
        }
        catch (FormatException ex)
        {
            throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri}: 'rim' is not base64", ex);
        }

        if (xml.Length == 0)
        {
            throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri}: 'rim' is empty");
        }

        return xml;
    }

    private byte[] Get(Uri uri, string rimId)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.Accept.ParseAdd("application/json");
            response = http.Send(request, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (HttpRequestException ex)
        {
            throw CollateralErrors.Unavailable($"RIM {rimId}: GET {uri} failed: {ex.Message}", ex);
        }
        catch (TaskCanceledException ex)
        {
            throw CollateralErrors.Unavailable($"RIM {rimId}: GET {uri} timed out", new TimeoutException($"GET {uri} timed out", ex));
        }

        using (response)
        {
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                throw new AttestationException(ErrorCode.RimNotFound, $"RIM {rimId}: GET {uri} answered 404");
            }

            if (!response.IsSuccessStatusCode)
            {
                var message = $"RIM {rimId}: GET {uri} answered {(int)response.StatusCode} {response.ReasonPhrase}".TrimEnd();
                throw CollateralErrors.Unavailable(message, new HttpRequestException(message, null, response.StatusCode));
            }

            if (response.Content.Headers.ContentLength is long declared && declared > maxResponseBytes)
            {
                throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri} declares {declared} bytes, over the {maxResponseBytes}-byte limit");
            }

            try
            {
                using var stream = response.Content.ReadAsStream();
                return ReadBounded(stream, maxResponseBytes)
                    ?? throw CollateralErrors.Malformed($"RIM {rimId}: GET {uri} returned more than {maxResponseBytes} bytes");
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                throw CollateralErrors.Unavailable($"RIM {rimId}: GET {uri}: the response broke off ({ex.Message})", ex);
            }
            catch (TaskCanceledException ex)
            {
                throw CollateralErrors.Unavailable($"RIM {rimId}: GET {uri} timed out while reading", new TimeoutException($"GET {uri} timed out", ex));
            }
        }
    }

    /// <summary>Reads at most <paramref name="limit"/> bytes; null when the stream holds more.</summary>
    internal static byte[]? ReadBounded(Stream stream, int limit)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = stream.Read(chunk)) > 0)
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

/// <summary>RIM IDs as the service and the cache accept them.</summary>
internal static class RimIds
{
    public const int MaxLength = 200;

    /// <summary>IDs are like <c>NV_GPU_DRIVER_GH100_550.144.03</c>: letters, digits, '_', '-', '.'; no "..".</summary>
    public static void ThrowIfInvalid(string rimId)
    {
        ArgumentNullException.ThrowIfNull(rimId);
        var ok = rimId.Length is > 0 and <= MaxLength && !rimId.Contains("..", StringComparison.Ordinal) && rimId[0] != '.';
        foreach (var c in rimId)
        {
            ok &= char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.';
        }

        if (!ok)
        {
            throw new AttestationException(ErrorCode.RimMalformed, $"'{(rimId.Length > 64 ? rimId[..64] + "…" : rimId)}' is not a RIM ID");
        }
    }
}
