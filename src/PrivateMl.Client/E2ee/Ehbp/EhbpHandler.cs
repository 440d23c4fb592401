using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Aci;
using PrivateMl.E2ee.Ehbp;

namespace PrivateMl.Client.E2ee.Ehbp;

/// <summary>Settings of the EHBP client transport.</summary>
public sealed record EhbpClientOptions
{
    /// <summary>Largest request body encrypted (the plaintext).</summary>
    public int MaxRequestBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Largest response frame accepted (the Go reference client allows 64 MiB; the gateway sends at most 64 KiB + 16).</summary>
    public int MaxResponseFrameBytes { get; init; } = 1024 * 1024;

    /// <summary>Most response ciphertext kept in <see cref="EhbpWireRecord"/> for signature and receipt checks.</summary>
    public int MaxRecordedResponseBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Plaintext per request frame.</summary>
    public int RequestChunkBytes { get; init; } = EhbpProtocol.DefaultPlaintextChunkBytes;

    /// <summary>
    /// Whether requests without a body (GET, DELETE) go out in plaintext, as EHBP specifies (SPEC §5.1, §7.4: nothing
    /// could authenticate their key). False refuses them with <see cref="ErrorCode.EhbpBodylessRequest"/>.
    /// </summary>
    public bool AllowBodylessPlaintext { get; init; } = true;

    public RandomNumberGenerator? Random { get; init; }

    /// <summary>
    /// Called with each encrypted request's session recovery token (SPEC §6) once its body is sealed, before it is sent:
    /// a caller that persists <see cref="EhbpRecoveryToken.ToJson"/> (with the response's <c>Ehbp-Response-Nonce</c>)
    /// can decrypt the response in another process if this one is interrupted. The callee owns the token: it is key
    /// material for that one response, to be disposed (and every stored copy deleted) once the response was decrypted
    /// or a new request superseded it. Null: no token is taken.
    /// </summary>
    public Action<HttpRequestMessage, EhbpRecoveryToken>? RecoveryTokenIssued { get; init; }
}

/// <summary>
/// The ciphertext actually sent and received for one request, which the gateway's signature and receipt cover. Read
/// it from <c>request.Options</c> under <see cref="EhbpHandler.WireKey"/> once the response body has been read.
/// </summary>
public sealed class EhbpWireRecord
{
    private readonly ArrayBufferWriter<byte> _response = new();
    private readonly int _limit;

    internal EhbpWireRecord(byte[] request, int limit)
    {
        RequestBody = request;
        _limit = limit;
    }

    public byte[] RequestBody { get; }

    /// <summary>The response body bytes as received (frames included).</summary>
    public byte[] ResponseBody => _response.WrittenSpan.ToArray();

    /// <summary>True when the response was larger than the recording limit (then <see cref="ResponseBody"/> is partial).</summary>
    public bool ResponseOverflowed { get; private set; }

    /// <summary>True when the response carried no nonce and was passed through as an unauthenticated plaintext error.</summary>
    public bool UnauthenticatedError { get; internal set; }

    internal void Append(ReadOnlyMemory<byte> bytes)
    {
        if (_response.WrittenCount + bytes.Length > _limit)
        {
            ResponseOverflowed = true;
            return;
        }

        _response.Write(bytes.Span);
    }
}

/// <summary>
/// EHBP client transport (Tinfoil SPEC §4–§5) as a <see cref="DelegatingHandler"/>. It encrypts only to the HPKE key of
/// an attested keyset the caller verified in this run (<see cref="ConnectAsync"/> also requires the node's
/// <c>/.well-known/hpke-keys</c> to serve that very key), seals every request body in frames, and opens the streamed
/// response frame by frame as it is read. A 2xx answer without <c>Ehbp-Response-Nonce</c> is a failure
/// (<see cref="ErrorCode.EhbpResponseNonceMissing"/>), a 422 key-config problem is <see cref="ErrorCode.EhbpKeyRejected"/>;
/// there is no plaintext fallback. Other non-2xx answers without a nonce are intermediary errors and pass through
/// unauthenticated (marked in <see cref="EhbpWireRecord.UnauthenticatedError"/>), as the spec allows.
/// </summary>
public sealed class EhbpHandler : DelegatingHandler
{
    /// <summary>Where each request's <see cref="EhbpWireRecord"/> is stored.</summary>
    public static readonly HttpRequestOptionsKey<EhbpWireRecord> WireKey = new("PrivateMl.Ehbp.Wire");

    private readonly byte[] _publicKey;
    private readonly EhbpClientOptions _options;
    private readonly RandomNumberGenerator _random;

    /// <summary>A transport that encrypts to <paramref name="attestedPublicKey"/> (the caller vouches it was attested).</summary>
    public EhbpHandler(ReadOnlySpan<byte> attestedPublicKey, HttpMessageHandler innerHandler, EhbpClientOptions? options = null)
        : base(innerHandler)
    {
        if (attestedPublicKey.Length != 32)
        {
            throw new AttestationException(ErrorCode.EhbpKeyNotAttested, "an attested EHBP key is 32 bytes");
        }

        _publicKey = attestedPublicKey.ToArray();
        _options = options ?? new EhbpClientOptions();
        _random = _options.Random ?? RandomNumberGenerator.Create();
    }

    /// <summary>The X25519 key requests are encrypted to.</summary>
    public ReadOnlyMemory<byte> PublicKey => _publicKey;

    /// <summary>The EHBP key of an attested keyset (its <see cref="EhbpProtocol.KeysetAlgorithm"/> entry), or <see cref="ErrorCode.EhbpKeyNotAttested"/>.</summary>
    public static byte[] AttestedKey(WorkloadKeyset attestedKeyset)
    {
        ArgumentNullException.ThrowIfNull(attestedKeyset);
        var entries = attestedKeyset.E2eePublicKeys.Where(k => k.Algo == EhbpProtocol.KeysetAlgorithm).ToList();
        if (entries.Count != 1)
        {
            throw new AttestationException(ErrorCode.EhbpKeyNotAttested, entries.Count == 0
                ? "the attested keyset lists no EHBP key; refusing to encrypt to an unattested key"
                : "the attested keyset lists more than one EHBP key");
        }

        var hex = entries[0].PublicKey;
        if (hex.Length != 64 || !hex.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f'))
        {
            throw new AttestationException(ErrorCode.EhbpKeyNotAttested, "the attested EHBP key is not 64 lowercase hex characters");
        }

        return Convert.FromHexString(hex);
    }

    /// <summary>
    /// Takes the EHBP key from <paramref name="attestedKeyset"/> (verified by the caller in this run), fetches the node's
    /// <c>/.well-known/hpke-keys</c> over <paramref name="innerHandler"/> and requires it to be that same key
    /// (<see cref="ErrorCode.EhbpKeyMismatch"/> otherwise), then returns the transport.
    /// </summary>
    public static async Task<EhbpHandler> ConnectAsync(
        WorkloadKeyset attestedKeyset, Uri baseAddress, HttpMessageHandler innerHandler, EhbpClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(baseAddress);
        ArgumentNullException.ThrowIfNull(innerHandler);
        var attested = AttestedKey(attestedKeyset);
        using var probe = new HttpClient(innerHandler, disposeHandler: false) { Timeout = TimeSpan.FromSeconds(30) };
        byte[] body;
        try
        {
            using var response = await probe.GetAsync(new Uri(baseAddress, EhbpProtocol.KeysPath.TrimStart('/')), HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK || response.Content.Headers.ContentLength > EhbpKeyConfig.MaxBytes)
            {
                throw new AttestationException(ErrorCode.EhbpKeyConfigMalformed, $"{EhbpProtocol.KeysPath} answered HTTP {(int)response.StatusCode}");
            }

            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            var buffer = new byte[EhbpKeyConfig.MaxBytes + 1];
            var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            body = buffer[..read];
        }
        catch (HttpRequestException e)
        {
            throw new AttestationException(ErrorCode.EhbpKeyConfigMalformed, $"{EhbpProtocol.KeysPath} could not be fetched", e);
        }

        var served = EhbpKeyConfig.ParseFirst(body);
        if (!CryptographicOperations.FixedTimeEquals(served.PublicKey, attested))
        {
            throw new AttestationException(ErrorCode.EhbpKeyMismatch, $"{EhbpProtocol.KeysPath} serves a key other than the attested one");
        }

        return new EhbpHandler(attested, innerHandler, options);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = request.Content is null ? [] : await ReadBoundedAsync(request.Content, cancellationToken).ConfigureAwait(false);
        if (body.Length == 0)
        {
            if (!_options.AllowBodylessPlaintext)
            {
                throw new AttestationException(ErrorCode.EhbpBodylessRequest, "EHBP cannot protect a request without a body; refusing to send it in plaintext");
            }

            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        var exchange = EhbpClientExchange.Create(_publicKey, _random);
        HttpResponseMessage? response = null;
        try
        {
            var wire = exchange.SealBody(body, _options.RequestChunkBytes);
            _options.RecoveryTokenIssued?.Invoke(request, exchange.ExportRecoveryToken());
            var record = new EhbpWireRecord(wire, _options.MaxRecordedResponseBytes);
            request.Options.Set(WireKey, record);
            var original = request.Content!;
            request.Content = new ChunkedContent(wire);
            foreach (var header in original.Headers.Where(h => !h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)))
            {
                request.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            original.Dispose();
            request.Headers.Remove(EhbpProtocol.EncapsulatedKeyHeader);
            request.Headers.TryAddWithoutValidation(EhbpProtocol.EncapsulatedKeyHeader, exchange.EncapsulatedKeyHeader);

            response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var nonces = response.Headers.TryGetValues(EhbpProtocol.ResponseNonceHeader, out var values) ? values.ToList() : [];
            if (nonces.Count == 0)
            {
                await RefuseUnencryptedAsync(response, cancellationToken).ConfigureAwait(false);
                record.UnauthenticatedError = true;
                exchange.Dispose();
                return response;
            }

            if (nonces.Count > 1)
            {
                throw new AttestationException(ErrorCode.EhbpHeaderMalformed, $"more than one {EhbpProtocol.ResponseNonceHeader}");
            }

            var opener = exchange.OpenResponse(nonces[0]);
            exchange.Dispose();
            var encrypted = response.Content;
            var stream = await encrypted.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            var decrypted = new StreamContent(new EhbpDecryptingStream(stream, opener, _options.MaxResponseFrameBytes, record.Append));
            foreach (var header in encrypted.Headers.Where(h => !h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)))
            {
                decrypted.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            response.Content = decrypted;
            return response;
        }
        catch
        {
            exchange.Dispose();
            response?.Dispose();
            throw;
        }
    }

    private static async Task RefuseUnencryptedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            response.Dispose();
            throw new AttestationException(ErrorCode.EhbpResponseNonceMissing,
                $"HTTP {(int)response.StatusCode} without {EhbpProtocol.ResponseNonceHeader}: the answer was not encrypted to this request (stripped or downgraded); refusing it");
        }

        if (response.StatusCode == HttpStatusCode.UnprocessableEntity
            && response.Content.Headers.ContentType?.MediaType == EhbpProtocol.ProblemMediaType)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (text.Contains(EhbpProtocol.KeyConfigProblemType, StringComparison.Ordinal))
            {
                response.Dispose();
                throw new AttestationException(ErrorCode.EhbpKeyRejected, "the node does not hold the attested EHBP key (422 key-config)");
            }
        }
    }

    private async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > _options.MaxRequestBytes)
        {
            throw new AttestationException(ErrorCode.EhbpBodyTooLarge, $"the request body is larger than {_options.MaxRequestBytes} bytes");
        }

        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > _options.MaxRequestBytes)
            {
                throw new AttestationException(ErrorCode.EhbpBodyTooLarge, $"the request body is larger than {_options.MaxRequestBytes} bytes");
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    /// <summary>The sealed body, sent with <c>Transfer-Encoding: chunked</c> and no <c>Content-Length</c> (SPEC §4.1).</summary>
    private sealed class ChunkedContent(byte[] wire) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => stream.WriteAsync(wire).AsTask();

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
            stream.WriteAsync(wire, cancellationToken).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
