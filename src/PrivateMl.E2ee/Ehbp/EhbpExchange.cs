using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Hpke;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// What both ends of one EHBP exchange hold after the HPKE setup (<c>"ehbp request"</c>): the request chunk cipher
/// (the context's key and base nonce, counter from 0), the encapsulated key, and the response secret
/// <c>Export("ehbp response", 32)</c> from which <see cref="ResponseCipher"/> derives the response keys (SPEC §4.4).
/// The HPKE context itself is disposed once these are taken.
/// </summary>
public abstract class EhbpExchange : IDisposable
{
    private readonly byte[] _responseSecret;

    private protected EhbpExchange(byte[] enc, HpkeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        EncapsulatedKey = enc;
        Request = new EhbpChunkCipher(context.Key, context.BaseNonce);
        _responseSecret = context.Export(EhbpProtocol.ResponseExportLabel, EhbpProtocol.ResponseSecretLength);
        context.Dispose();
    }

    /// <summary>The HPKE <c>enc</c> (the client sends it as <c>Ehbp-Encapsulated-Key</c>).</summary>
    public byte[] EncapsulatedKey { get; }

    /// <summary>Request chunks: the client seals, the server opens (counter from 0).</summary>
    public EhbpChunkCipher Request { get; }

    /// <summary>The response chunk cipher for a 32-byte response nonce.</summary>
    private protected EhbpChunkCipher ResponseCipher(ReadOnlySpan<byte> responseNonce) => EhbpResponseKeys.Cipher(_responseSecret, EncapsulatedKey, responseNonce);

    /// <summary><c>Export("ehbp response", 32)</c> of the request context.</summary>
    private protected ReadOnlySpan<byte> ResponseSecret => _responseSecret;

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            Request.Dispose();
            CryptographicOperations.ZeroMemory(_responseSecret);
        }
    }
}

/// <summary>
/// The client side of one EHBP exchange: <c>SetupBaseS(pkR, "ehbp request")</c>, request chunks sealed with that
/// context, and the response opened with keys derived from the same context and the server's
/// <c>Ehbp-Response-Nonce</c>. One instance per request.
/// </summary>
public sealed class EhbpClientExchange : EhbpExchange
{
    private EhbpClientExchange(byte[] enc, HpkeContext context)
        : base(enc, context)
    {
    }

    /// <summary>The <c>Ehbp-Encapsulated-Key</c> header value (lowercase hex).</summary>
    public string EncapsulatedKeyHeader => Convert.ToHexStringLower(EncapsulatedKey);

    public static EhbpClientExchange Create(ReadOnlySpan<byte> serverPublicKey, RandomNumberGenerator random)
    {
        var (enc, context) = Hpke.Hpke.SetupBaseSender(HpkeSuite.Ehbp, serverPublicKey, EhbpProtocol.RequestInfo, random);
        return new EhbpClientExchange(enc, context);
    }

    /// <summary>Deterministic setup with a fixed ephemeral key (known-answer tests only).</summary>
    internal static EhbpClientExchange CreateWithEphemeral(ReadOnlySpan<byte> serverPublicKey, ReadOnlySpan<byte> ephemeralPrivateKey)
    {
        var (enc, context) = Hpke.Hpke.SetupBaseSenderWithEphemeral(HpkeSuite.Ehbp, serverPublicKey, EhbpProtocol.RequestInfo, ephemeralPrivateKey);
        return new EhbpClientExchange(enc, context);
    }

    /// <summary>The whole request body as frames of at most <paramref name="chunkBytes"/> plaintext bytes each.</summary>
    public byte[] SealBody(ReadOnlySpan<byte> body, int chunkBytes = EhbpProtocol.DefaultPlaintextChunkBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1);
        var frames = (body.Length + chunkBytes - 1) / chunkBytes;
        var wire = new byte[body.Length + (frames * (EhbpProtocol.FrameHeaderLength + HpkeSuite.TagLength))];
        var offset = 0;
        for (var start = 0; start < body.Length; start += chunkBytes)
        {
            var chunk = body.Slice(start, Math.Min(chunkBytes, body.Length - start));
            var length = EhbpProtocol.FrameHeaderLength + chunk.Length + HpkeSuite.TagLength;
            Request.SealFrame(chunk, wire.AsSpan(offset, length));
            offset += length;
        }

        return wire;
    }

    /// <summary>The response chunk cipher for the server's <c>Ehbp-Response-Nonce</c> header value.</summary>
    public EhbpChunkCipher OpenResponse(string? responseNonceHeader) => EhbpResponseKeys.Open(ResponseSecret, EncapsulatedKey, responseNonceHeader);

    /// <summary>
    /// The session recovery token of this exchange (SPEC §6): what decrypts its response without this object, e.g. in
    /// another process after this one was interrupted. Sensitive key material, one per request: see <see cref="EhbpRecoveryToken"/>.
    /// </summary>
    public EhbpRecoveryToken ExportRecoveryToken() => new(ResponseSecret, EncapsulatedKey);
}

/// <summary>
/// The server side of one EHBP exchange: <c>SetupBaseR(enc, skR, "ehbp request")</c> from the
/// <c>Ehbp-Encapsulated-Key</c> header, request chunks opened with that context, and a response sealed under a fresh
/// 32-byte response nonce.
/// </summary>
public sealed class EhbpServerExchange : EhbpExchange
{
    private EhbpServerExchange(byte[] enc, HpkeContext context)
        : base(enc, context)
    {
    }

    /// <summary>
    /// Decapsulates the header value with the server's private key. A malformed header is
    /// <see cref="ErrorCode.EhbpHeaderMalformed"/>; a low-order key is <see cref="ErrorCode.HpkeInvalidKey"/>.
    /// </summary>
    public static EhbpServerExchange Accept(string? encapsulatedKeyHeader, ReadOnlySpan<byte> serverPrivateKey)
    {
        var enc = EhbpProtocol.ParseHex32(encapsulatedKeyHeader, EhbpProtocol.EncapsulatedKeyHeader);
        var context = Hpke.Hpke.SetupBaseRecipient(HpkeSuite.Ehbp, enc, serverPrivateKey, EhbpProtocol.RequestInfo);
        return new EhbpServerExchange(enc, context);
    }

    /// <summary>A fresh response nonce from <paramref name="random"/>: its header value and the response chunk cipher.</summary>
    public (string NonceHeader, EhbpChunkCipher Cipher) CreateResponse(RandomNumberGenerator random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var nonce = new byte[EhbpProtocol.ResponseNonceLength];
        random.GetBytes(nonce);
        return CreateResponse(nonce);
    }

    internal (string NonceHeader, EhbpChunkCipher Cipher) CreateResponse(ReadOnlySpan<byte> nonce) =>
        (Convert.ToHexStringLower(nonce), ResponseCipher(nonce));

    /// <summary>Opens a whole framed body (bounded by <paramref name="maxPlaintextBytes"/>).</summary>
    public byte[] OpenBody(ReadOnlySpan<byte> wire, int maxPlaintextBytes) => EhbpFraming.OpenAll(wire, Request, maxPlaintextBytes);
}
