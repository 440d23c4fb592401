using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// An EHBP session recovery token (SPEC §6): the request context's <c>Export("ehbp response", 32)</c> and the request's
/// <c>enc</c> — all a client needs to decrypt the response to one request without the live exchange, e.g. after the
/// process that sent a long-running request was interrupted. JSON form <c>{"exportedSecret":"…","requestEnc":"…"}</c>,
/// both 32 bytes as lowercase hex (§6.1.1).
/// </summary>
/// <remarks>
/// <para>
/// Decrypting with it (§6.2): <see cref="OpenResponse"/> with the response's original <c>Ehbp-Response-Nonce</c>, then
/// the frames from the first one (<see cref="EhbpDecryptingStream"/> releases a frame only after it authenticated and
/// refuses a body that ends inside a frame). A server that replays and tails the response must replay it from its
/// first frame: each replay is opened with a fresh <see cref="OpenResponse"/> (counter from 0); EHBP cannot resume at a
/// byte offset, and a tail without its first frames does not authenticate (§6.2.1). An authenticated prefix is not a
/// complete answer: the application checks completion (an SSE terminal event, a complete JSON document).
/// </para>
/// <para>
/// It decrypts one response, so it is key material (§6.3): keep it only until that response was decrypted or a new
/// request superseded it, then <see cref="Dispose"/> it (which wipes it) and delete every stored copy of its JSON.
/// </para>
/// </remarks>
public sealed class EhbpRecoveryToken : IDisposable
{
    /// <summary>Longest JSON text <see cref="Parse"/> reads (the token is ~150 bytes).</summary>
    public const int MaxJsonBytes = 4096;

    private const string SecretMember = "exportedSecret";
    private const string EncMember = "requestEnc";
    private const int FieldBytes = 32;

    private readonly byte[] _exportedSecret;
    private readonly byte[] _requestEnc;
    private bool _disposed;

    internal EhbpRecoveryToken(ReadOnlySpan<byte> exportedSecret, ReadOnlySpan<byte> requestEnc)
    {
        if (exportedSecret.Length != FieldBytes || requestEnc.Length != FieldBytes)
        {
            throw new ArgumentException($"an EHBP recovery token holds two {FieldBytes}-byte values");
        }

        _exportedSecret = exportedSecret.ToArray();
        _requestEnc = requestEnc.ToArray();
    }

    /// <summary>The request's HPKE <c>enc</c> (its <c>Ehbp-Encapsulated-Key</c>), not secret.</summary>
    public ReadOnlySpan<byte> RequestEnc => Alive()._requestEnc;

    /// <summary>
    /// Reads the JSON form. Anything else — not a JSON object, a member missing, repeated or not a string, a value that
    /// is not 64 lowercase hex characters, more than <see cref="MaxJsonBytes"/> — is
    /// <see cref="ErrorCode.EhbpRecoveryTokenInvalid"/> (SPEC §5.5 <c>INVALID_TOKEN</c>). Other members are ignored.
    /// </summary>
    public static EhbpRecoveryToken Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxJsonBytes)
        {
            throw Invalid($"the token is longer than {MaxJsonBytes} bytes");
        }

        byte[]? secret = null;
        byte[]? enc = null;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 4 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid("the token is not a JSON object");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                if (name is SecretMember or EncMember)
                {
                    if ((name == SecretMember ? secret : enc) is not null)
                    {
                        throw Invalid($"'{name}' appears twice");
                    }

                    var value = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                    var bytes = Hex32(value) ?? throw Invalid($"'{name}' is not {FieldBytes * 2} lowercase hex characters");
                    if (name == SecretMember)
                    {
                        secret = bytes;
                    }
                    else
                    {
                        enc = bytes;
                    }
                }
                else
                {
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                throw Invalid("the token is not one JSON object");
            }

            if (secret is null || enc is null)
            {
                throw Invalid($"the token lacks '{(secret is null ? SecretMember : EncMember)}'");
            }

            return new EhbpRecoveryToken(secret, enc);
        }
        catch (JsonException e)
        {
            throw Invalid($"the token is not well-formed JSON: {e.Message}");
        }
        finally
        {
            if (secret is not null)
            {
                CryptographicOperations.ZeroMemory(secret);
            }
        }
    }

    /// <inheritdoc cref="Parse(ReadOnlySpan{byte})"/>
    public static EhbpRecoveryToken Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return json.Length > MaxJsonBytes
            ? throw Invalid($"the token is longer than {MaxJsonBytes} bytes")
            : Parse(Encoding.UTF8.GetBytes(json));
    }

    /// <summary>The JSON form (§6.1.1) — sensitive: store it no longer than recovery needs.</summary>
    public string ToJson() =>
        $"{{\"{SecretMember}\":\"{Convert.ToHexStringLower(Alive()._exportedSecret)}\",\"{EncMember}\":\"{Convert.ToHexStringLower(_requestEnc)}\"}}";

    /// <summary>
    /// The response chunk cipher for the response's original <c>Ehbp-Response-Nonce</c> header value, counter from 0 (a
    /// fresh one for each replay of the response). Missing: <see cref="ErrorCode.EhbpResponseNonceMissing"/>; malformed:
    /// <see cref="ErrorCode.EhbpHeaderMalformed"/>.
    /// </summary>
    public EhbpChunkCipher OpenResponse(string? responseNonceHeader) => EhbpResponseKeys.Open(Alive()._exportedSecret, _requestEnc, responseNonceHeader);

    /// <summary>Wipes the secret; the token is consumed.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_exportedSecret);
    }

    public override string ToString() => $"{nameof(EhbpRecoveryToken)}(requestEnc {Convert.ToHexStringLower(_requestEnc)})";

    private EhbpRecoveryToken Alive()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return this;
    }

    private static byte[]? Hex32(string? value) =>
        value is { Length: FieldBytes * 2 } && value.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f') ? Convert.FromHexString(value) : null;

    private static AttestationException Invalid(string detail) => new(ErrorCode.EhbpRecoveryTokenInvalid, $"invalid EHBP session recovery token: {detail}");
}
