using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral;

/// <summary>Settings of <see cref="PccsCollateralSource"/>; the defaults suit Intel PCS and a standard PCCS.</summary>
public sealed record PccsCollateralSourceOptions
{
    /// <summary>Where the Intel SGX Root CA publishes its CRL (the root certificate's CRL distribution point).</summary>
    public static readonly Uri IntelRootCaCrl = new("https://certificates.trustedservices.intel.com/IntelSGXRootCA.der");

    /// <summary>Any response body larger than this is refused (real ones are a few KB; the processor PCK CRL is the largest).</summary>
    public int MaxResponseBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// Root CA CRL location used for Intel PCS (which has no <c>rootcacrl</c> route) and when a PCCS does not answer
    /// <c>/sgx/certification/v4/rootcacrl</c> with success.
    /// </summary>
    public Uri RootCaCrlUri { get; init; } = IntelRootCaCrl;
}

/// <summary>
/// Fetches collateral from a PCCS or Intel PCS with the v4 API (<c>/sgx/certification/v4/…</c> and
/// <c>/tdx/certification/v4/…</c> on <c>baseAddress</c>). The signed <c>tcbInfo</c> / <c>enclaveIdentity</c> objects are
/// cut out of the response bodies byte for byte (their signatures cover those bytes), issuer chains come from the
/// URL-encoded response headers, CRLs are requested as DER and accepted as DER, PEM or hex. Nothing is verified here.
/// </summary>
public sealed class PccsCollateralSource : ICollateralSource
{
    internal const string PckCrlIssuerChainHeader = "SGX-PCK-CRL-Issuer-Chain";
    internal const string TcbInfoIssuerChainHeader = "TCB-Info-Issuer-Chain";
    internal const string TcbInfoIssuerChainHeaderV3 = "SGX-TCB-Info-Issuer-Chain";
    internal const string QeIdentityIssuerChainHeader = "SGX-Enclave-Identity-Issuer-Chain";
    internal const string QeIdentityIssuerChainHeaderAlt = "Enclave-Identity-Issuer-Chain";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly HttpClient http;
    private readonly string baseUrl;
    private readonly PccsCollateralSourceOptions options;

    /// <param name="http">The caller's client (its timeout and handler apply); the source never disposes it.</param>
    /// <param name="baseAddress">PCCS or PCS root, e.g. <c>https://api.trustedservices.intel.com</c>; a trailing
    /// <c>/sgx/certification/v4</c> or <c>/tdx/certification/v4</c> is tolerated.</param>
    public PccsCollateralSource(HttpClient http, Uri baseAddress, PccsCollateralSourceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(baseAddress);
        if (!baseAddress.IsAbsoluteUri || (baseAddress.Scheme != Uri.UriSchemeHttps && baseAddress.Scheme != Uri.UriSchemeHttp))
        {
            throw new ArgumentException($"the PCCS address must be an absolute http(s) URL, got '{baseAddress}'", nameof(baseAddress));
        }

        this.http = http;
        this.options = options ?? new PccsCollateralSourceOptions();
        if (this.options.MaxResponseBytes <= 0)
        {
            throw new ArgumentException("MaxResponseBytes must be positive", nameof(options));
        }

        var text = baseAddress.GetLeftPart(UriPartial.Path).TrimEnd('/');
        foreach (var suffix in (string[])["/sgx/certification/v4", "/tdx/certification/v4"])
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                text = text[..^suffix.Length];
            }
        }

        baseUrl = text;
        IsIntelPcs = baseAddress.Host.Equals("api.trustedservices.intel.com", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True for Intel's own PCS, which serves the root CA CRL only from the root's distribution point.</summary>
    public bool IsIntelPcs { get; }

    internal Uri PckCrlUri(CollateralRequest r) =>
        new($"{baseUrl}/sgx/certification/v4/pckcrl?ca={(r.Ca == PckCaType.Platform ? "platform" : "processor")}&encoding=der");

    internal Uri TcbInfoUri(CollateralRequest r) => new($"{baseUrl}/{Tee(r)}/certification/v4/tcb?fmspc={r.Fmspc}");

    internal Uri QeIdentityUri(CollateralRequest r) => new($"{baseUrl}/{Tee(r)}/certification/v4/qe/identity");

    internal Uri RootCaCrlUri => new($"{baseUrl}/sgx/certification/v4/rootcacrl");

    public async Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);

        var pckCrlTask = GetAsync(PckCrlUri(request), "PCK CRL", cancellationToken);
        var tcbTask = GetAsync(TcbInfoUri(request), "TCB info", cancellationToken);
        var qeTask = GetAsync(QeIdentityUri(request), "QE identity", cancellationToken);
        var rootTask = GetRootCaCrlAsync(cancellationToken);
        await Task.WhenAll(pckCrlTask, tcbTask, qeTask, rootTask).ConfigureAwait(false);

        var pckCrl = await pckCrlTask.ConfigureAwait(false);
        var tcb = await tcbTask.ConfigureAwait(false);
        var qe = await qeTask.ConfigureAwait(false);

        var (tcbInfo, tcbSignature) = ExtractSigned(tcb.Body, "tcbInfo", "TCB info");
        var (qeIdentity, qeSignature) = ExtractSigned(qe.Body, "enclaveIdentity", "QE identity");
        var collateral = new DcapCollateral
        {
            PckCrlIssuerChain = IssuerChain(pckCrl.Headers, "PCK CRL", PckCrlIssuerChainHeader),
            RootCaCrl = await rootTask.ConfigureAwait(false),
            PckCrl = DecodeCrl(pckCrl.Body, "PCK CRL"),
            TcbInfoIssuerChain = IssuerChain(tcb.Headers, "TCB info", TcbInfoIssuerChainHeader, TcbInfoIssuerChainHeaderV3),
            TcbInfo = tcbInfo,
            TcbInfoSignature = tcbSignature,
            QeIdentityIssuerChain = IssuerChain(qe.Headers, "QE identity", QeIdentityIssuerChainHeader, QeIdentityIssuerChainHeaderAlt),
            QeIdentity = qeIdentity,
            QeIdentitySignature = qeSignature,
        };

        // The server must answer the question asked: a TCB info for another FMSPC or TEE is a wrong answer, not collateral.
        var facts = CollateralFacts.Read(collateral, $"collateral from {baseUrl}");
        if (!facts.Matches(request))
        {
            throw CollateralErrors.Malformed($"{baseUrl} answered with collateral for {facts.Describe()} when {request} was asked");
        }

        return collateral;
    }

    private async Task<byte[]> GetRootCaCrlAsync(CancellationToken cancellationToken)
    {
        if (!IsIntelPcs)
        {
            try
            {
                var fromPccs = await GetAsync(RootCaCrlUri, "root CA CRL", cancellationToken).ConfigureAwait(false);
                return DecodeCrl(fromPccs.Body, "root CA CRL");
            }
            catch (AttestationException ex) when (ex.InnerException is HttpRequestException { StatusCode: not null })
            {
                // This PCCS has no rootcacrl route (or refused it): take the CRL from the root's distribution point.
            }
        }

        var fromCdp = await GetAsync(options.RootCaCrlUri, "root CA CRL", cancellationToken).ConfigureAwait(false);
        return DecodeCrl(fromCdp.Body, "root CA CRL");
    }

    private async Task<(byte[] Body, HttpResponseHeaders Headers)> GetAsync(Uri uri, string what, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw CollateralErrors.Unavailable($"{what}: GET {uri} failed: {ex.Message}", ex);
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw CollateralErrors.Unavailable($"{what}: GET {uri} timed out", new TimeoutException($"GET {uri} timed out", ex));
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var status = $"{(int)response.StatusCode} {response.ReasonPhrase}".TrimEnd();
                var error = response.Headers.TryGetValues("Error-Message", out var messages) ? $" ({string.Join(' ', messages)})" : string.Empty;
                var message = $"{what}: GET {uri} answered {status}{error}";
                throw CollateralErrors.Unavailable(message, new HttpRequestException(message, null, response.StatusCode));
            }

            if (response.Content.Headers.ContentLength is long declared && declared > options.MaxResponseBytes)
            {
                throw CollateralErrors.Malformed($"{what}: GET {uri} declares {declared} bytes, over the {options.MaxResponseBytes}-byte limit");
            }

            try
            {
                var body = await ReadBoundedAsync(response.Content, options.MaxResponseBytes, cancellationToken).ConfigureAwait(false)
                    ?? throw CollateralErrors.Malformed($"{what}: GET {uri} returned more than {options.MaxResponseBytes} bytes");
                return (body, response.Headers);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                throw CollateralErrors.Unavailable($"{what}: GET {uri}: the response broke off ({ex.Message})", ex);
            }
            catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                throw CollateralErrors.Unavailable($"{what}: GET {uri} timed out while reading", new TimeoutException($"GET {uri} timed out", ex));
            }
        }
    }

    private static async Task<byte[]?> ReadBoundedAsync(HttpContent content, int limit, CancellationToken cancellationToken)
    {
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
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

    private static string IssuerChain(HttpResponseHeaders headers, string what, params string[] names)
    {
        foreach (var name in names)
        {
            if (!headers.TryGetValues(name, out var values))
            {
                continue;
            }

            var list = values.ToList();
            if (list.Count != 1)
            {
                throw CollateralErrors.Malformed($"{what}: {list.Count} '{name}' headers, expected one");
            }

            string chain;
            try
            {
                chain = Uri.UnescapeDataString(list[0]);
            }
            catch (UriFormatException ex)
            {
                throw CollateralErrors.Malformed($"{what}: header '{name}' is not URL-encoded text", ex);
            }

            if (!PemEncoding.TryFind(chain, out var fields) || !chain[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                throw CollateralErrors.Malformed($"{what}: header '{name}' holds no PEM certificate");
            }

            return chain;
        }

        throw CollateralErrors.Malformed($"{what}: the response has no '{names[0]}' header (the issuer chain)");
    }

    /// <summary>
    /// Cuts the value of <paramref name="member"/> out of a PCS body <c>{"member":{…},"signature":"hex"}</c> exactly as
    /// served, and decodes the signature. Duplicate members are refused: which copy was signed would be ambiguous.
    /// </summary>
    internal static (string Signed, byte[] Signature) ExtractSigned(byte[] body, string member, string what)
    {
        string? signed = null;
        byte[]? signature = null;
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 32 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw CollateralErrors.Malformed($"{what}: the response body is not a JSON object");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                if (name == member)
                {
                    if (signed is not null || reader.TokenType != JsonTokenType.StartObject)
                    {
                        throw CollateralErrors.Malformed($"{what}: '{member}' must appear once, as a JSON object");
                    }

                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    var end = (int)reader.BytesConsumed;
                    signed = StrictUtf8.GetString(body, start, end - start);
                }
                else if (name == "signature")
                {
                    if (signature is not null || reader.TokenType != JsonTokenType.String)
                    {
                        throw CollateralErrors.Malformed($"{what}: 'signature' must appear once, as a hex string");
                    }

                    signature = Convert.FromHexString(reader.GetString()!);
                }
                else
                {
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                throw CollateralErrors.Malformed($"{what}: the response body is not a single JSON object");
            }
        }
        catch (Exception ex) when (ex is JsonException or FormatException or DecoderFallbackException or InvalidOperationException)
        {
            throw CollateralErrors.Malformed($"{what}: the response body is not the PCS JSON shape ({ex.Message})", ex);
        }

        if (signed is null || signature is null)
        {
            throw CollateralErrors.Malformed($"{what}: the response body lacks '{(signed is null ? member : "signature")}'");
        }

        if (signature.Length == 0)
        {
            throw CollateralErrors.Malformed($"{what}: the signature is empty");
        }

        return (signed, signature);
    }

    /// <summary>A CRL as DER, whether it came as DER, PEM (<c>X509 CRL</c>) or hex text (PCCS's default).</summary>
    internal static byte[] DecodeCrl(byte[] body, string what)
    {
        byte[] der;
        if (body.Length > 0 && body[0] == 0x30)
        {
            der = body;
        }
        else
        {
            string text;
            try
            {
                text = StrictUtf8.GetString(body).Trim();
            }
            catch (DecoderFallbackException ex)
            {
                throw CollateralErrors.Malformed($"{what}: neither DER nor text", ex);
            }

            if (PemEncoding.TryFind(text, out var fields))
            {
                if (!text[fields.Label].SequenceEqual("X509 CRL"))
                {
                    throw CollateralErrors.Malformed($"{what}: PEM label '{text[fields.Label]}' is not X509 CRL");
                }

                der = Convert.FromBase64String(text[fields.Base64Data]);
            }
            else
            {
                try
                {
                    der = Convert.FromHexString(text);
                }
                catch (FormatException ex)
                {
                    throw CollateralErrors.Malformed($"{what}: the body is neither DER, PEM nor hex", ex);
                }
            }
        }

        CollateralFacts.CrlNextUpdate(der, what); // structural check: a DER CRL with a nextUpdate
        return der;
    }

    private static string Tee(CollateralRequest r) => r.Tee == TeeType.Tdx ? "tdx" : "sgx";
}
