using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.Client.E2ee.Aci;

/// <summary>An answer received over ACI E2EE v2 and checked end to end.</summary>
public sealed record AciChatResult
{
    public required string Content { get; init; }

    public string? ChatId { get; init; }

    /// <summary>The encrypted request body exactly as sent.</summary>
    public required byte[] RequestWireBody { get; init; }

    /// <summary>The response bytes exactly as received (ciphertext fields, SSE framing).</summary>
    public required byte[] ResponseBytes { get; init; }

    /// <summary>The checks on the gateway's signature over those exact bytes (all passed, or the call threw).</summary>
    public required IReadOnlyList<CheckResult> Checks { get; init; }

    public string Algo { get; init; } = string.Empty;
}

/// <summary>
/// A chat client for ACI E2EE v2 (e2ee-v2.md). It encrypts only to an E2EE key of the keyset that
/// <see cref="NodeVerifier"/> attested in the same run (<see cref="NodeReportFormat.Aci"/>), with a fresh client key,
/// nonce and timestamp per request, and never falls back to plaintext: a refusal, a response without E2EE, a plaintext
/// content field or another suite is an <see cref="AciE2eeException"/>. ACI v2 stream chunks carry no sequence
/// numbers, so dropped, reordered, duplicated or truncated chunks are caught at the end: the gateway's Ed25519
/// signature (key from the attested keyset) must cover exactly the bytes sent and received, else
/// <see cref="AciE2eeError.StreamIntegrity"/>.
/// </summary>
public sealed class AciE2eeChat
{
    public const int MaxResponseBytes = 16 * 1024 * 1024;

    private readonly HttpClient _http;
    private readonly Uri _baseAddress;
    private readonly string? _apiKey;
    private readonly TimeProvider _time;
    private readonly RandomNumberGenerator? _random;

    public AciE2eeChat(HttpClient http, Uri baseAddress, string? apiKey = null, TimeProvider? time = null, RandomNumberGenerator? random = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(baseAddress);
        _http = http;
        _baseAddress = baseAddress;
        _apiKey = apiKey;
        _time = time ?? TimeProvider.System;
        _random = random;
    }

    /// <summary>
    /// Sends <paramref name="plaintextBody"/> (an OpenAI request with a string <c>model</c>) to <paramref name="endpoint"/>
    /// encrypted to the attested <paramref name="suite"/> key, streams decrypted deltas to <paramref name="onDelta"/>, and
    /// verifies the gateway's signature over the exact bytes.
    /// </summary>
    /// <param name="holdUntilVerified">
    /// True (default): decrypted stream deltas reach <paramref name="onDelta"/> only after the signature over the exact
    /// bytes verified, so a tampered stream shows nothing. False: live, and a later failure says the shown text is void.
    /// </param>
    /// <exception cref="AciE2eeException">every refusal and every failed check, by <see cref="AciE2eeException.Error"/>.</exception>
    public async Task<AciChatResult> SendAsync(
        NodeVerificationResult attestation,
        byte[] plaintextBody,
        string endpoint = AciPayload.ChatEndpoint,
        AciSuite suite = AciSuite.X25519,
        Action<string>? onDelta = null,
        bool holdUntilVerified = true,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(attestation);
        ArgumentNullException.ThrowIfNull(plaintextBody);
        if (!attestation.Trusted || attestation.Keyset is not { } keyset)
        {
            throw new AciE2eeException(AciE2eeError.NodeNotTrusted, "the node was not verified with an ACI report in this run; nothing is encrypted to it");
        }

        if (!AciPayload.IsSupportedEndpoint(endpoint))
        {
            throw new AciE2eeException(AciE2eeError.UnsupportedEndpoint, $"E2EE v2 is not defined for {endpoint}");
        }

        var service = keyset.E2eePublicKeys.FirstOrDefault(k => k.Algo == suite.Algo())
            ?? throw new AciE2eeException(AciE2eeError.KeyNotAttested, $"the attested keyset has no {suite.Algo()} key");
        var servicePublic = suite.ParsePublicKey(service.PublicKey)
            ?? throw new AciE2eeException(AciE2eeError.InvalidPublicKey, $"the attested {suite.Algo()} key is not a valid public key");
        var receiptKey = keyset.ReceiptSigningKeys.FirstOrDefault(k => k.Algo == WorkloadKeyset.Ed25519)
            ?? throw new AciE2eeException(AciE2eeError.KeyNotAttested, "the attested keyset has no Ed25519 receipt key to check the answer with");

        var body = AciPayload.ParseBody(plaintextBody, out var model)
            ?? throw new AciE2eeException(AciE2eeError.InvalidPayloadModel, "the request must be a JSON object with a string model");
        var stream = body["stream"] is JsonValue s && s.GetValueKind() == JsonValueKind.True;
        using var clientKey = AciPrivateKey.Create(suite, _random);
        var nonceBytes = new byte[32];
        if (_random is null)
        {
            RandomNumberGenerator.Fill(nonceBytes);
        }
        else
        {
            _random.GetBytes(nonceBytes);
        }

        var context = new AciExchangeContext(suite, model!, Convert.ToHexStringLower(nonceBytes), _time.GetUtcNow().ToUnixTimeSeconds());
        AciPayload.EncryptRequest(body, endpoint, context, servicePublic, _random);
        var wire = AciPayload.Serialize(body);

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_baseAddress, endpoint.TrimStart('/'))) { Content = new ByteArrayContent(wire) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add(AciHeaders.Version, AciHeaders.V2);
        request.Headers.Add(AciHeaders.ClientPublicKey, clientKey.PublicKeyHex);
        request.Headers.Add(AciHeaders.ModelPublicKey, service.PublicKey);
        request.Headers.Add(AciHeaders.Nonce, context.Nonce);
        request.Headers.Add(AciHeaders.Timestamp, context.Timestamp.ToString(CultureInfo.InvariantCulture));
        Authorize(request);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var error = await ReadBoundedAsync(response.Content, 64 * 1024, cancellationToken).ConfigureAwait(false);
            throw Refused((int)response.StatusCode, error);
        }

        CheckResponseHeaders(response, suite);
        var received = new ArrayBufferWriter<byte>();
        var content = new StringBuilder();
        string? chatId = null;
        var sawDone = false;
        var held = new List<string>();
        var splitter = new AciSseSplitter((_, data, _) =>
        {
            if (data is null)
            {
                return;
            }

            if (data == "[DONE]")
            {
                sawDone = true;
                return;
            }

            var chunk = JsonNode.Parse(data) as JsonObject
                ?? throw new AciE2eeException(AciE2eeError.ResponseNotEncrypted, "a stream event is not a JSON object");
            chatId ??= chunk["id"] is JsonValue id && id.GetValueKind() == JsonValueKind.String ? id.GetValue<string>() : null;
            AciPayload.DecryptResponse(chunk, endpoint, streamChunk: true, context, clientKey);
            var delta = DeltaOf(chunk, endpoint);
            if (!string.IsNullOrEmpty(delta))
            {
                content.Append(delta);
                if (holdUntilVerified)
                {
                    held.Add(delta);
                }
                else
                {
                    onDelta?.Invoke(delta);
                }
            }
        });
        var discard = new ArrayBufferWriter<byte>();
        await using (var bodyStream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false))
        {
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await bodyStream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (received.WrittenCount + read > MaxResponseBytes)
                {
                    throw new AciE2eeException(AciE2eeError.StreamIntegrity, $"the answer is larger than {MaxResponseBytes} bytes");
                }

                received.Write(buffer.AsSpan(0, read));
                if (stream)
                {
                    try
                    {
                        splitter.Feed(buffer.AsSpan(0, read), discard);
                    }
                    catch (Exception e) when (e is JsonException or InvalidDataException)
                    {
                        throw new AciE2eeException(AciE2eeError.ResponseNotEncrypted, "a stream event is not valid JSON");
                    }
                }
            }
        }

        var bytes = received.WrittenSpan.ToArray();
        if (stream)
        {
            try
            {
                splitter.Complete(discard);
            }
            catch (Exception e) when (e is JsonException or InvalidDataException)
            {
                throw new AciE2eeException(AciE2eeError.ResponseNotEncrypted, "a stream event is not valid JSON");
            }

            if (!sawDone)
            {
                throw new AciE2eeException(AciE2eeError.StreamIntegrity, "the stream ended without [DONE]: it was truncated");
            }
        }
        else
        {
            JsonObject answer;
            try
            {
                answer = JsonNode.Parse(bytes) as JsonObject ?? throw new JsonException();
            }
            catch (JsonException)
            {
                throw new AciE2eeException(AciE2eeError.ResponseNotEncrypted, "the answer is not a JSON object");
            }

            chatId = answer["id"] is JsonValue id && id.GetValueKind() == JsonValueKind.String ? id.GetValue<string>() : null;
            AciPayload.DecryptResponse(answer, endpoint, streamChunk: false, context, clientKey);
            var message = MessageOf(answer, endpoint);
            content.Append(message);
            held.Add(message);
        }

        var checks = await VerifySignatureAsync(chatId, wire, bytes, receiptKey.PublicKey, cancellationToken).ConfigureAwait(false);
        if (holdUntilVerified || !stream)
        {
            foreach (var delta in held)
            {
                onDelta?.Invoke(delta);
            }
        }

        return new AciChatResult
        {
            Content = content.ToString(),
            ChatId = chatId,
            RequestWireBody = wire,
            ResponseBytes = bytes,
            Checks = checks,
            Algo = suite.Algo(),
        };
    }

    private static void CheckResponseHeaders(HttpResponseMessage response, AciSuite suite)
    {
        string? Header(string name) => response.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : null;
        if (Header(AciHeaders.Applied) != "true")
        {
            throw new AciE2eeException(AciE2eeError.ResponseNotEncrypted, "the answer does not say X-E2EE-Applied: true; refusing a possibly plaintext answer");
        }

        if (Header(AciHeaders.Version) != AciHeaders.V2 || Header(AciHeaders.Algo) != suite.Algo())
        {
            throw new AciE2eeException(AciE2eeError.Downgrade, $"the answer claims E2EE version {Header(AciHeaders.Version) ?? "none"} / {Header(AciHeaders.Algo) ?? "no algo"}, not 2 / {suite.Algo()}");
        }
    }

    /// <summary>
    /// The gateway's Ed25519 signature must cover <c>sha256(sent):sha256(received)</c>; with ACI v2 this is what detects
    /// dropped, reordered, duplicated or truncated stream chunks.
    /// </summary>
    private async Task<IReadOnlyList<CheckResult>> VerifySignatureAsync(string? chatId, byte[] sent, byte[] received, string receiptKey, CancellationToken cancellationToken)
    {
        const string Why = "ACI E2EE v2 chunks carry no sequence numbers, so dropped, reordered, duplicated or truncated chunks are detected here, by the gateway's signature over the exact bytes";
        if (chatId is null)
        {
            throw new AciE2eeException(AciE2eeError.StreamIntegrity, $"the answer carries no id to fetch its signature by ({Why})");
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_baseAddress, $"v1/signature/{Uri.EscapeDataString(chatId)}?signing_algo=ed25519"));
        Authorize(request);
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var signature = await ReadBoundedAsync(response.Content, 64 * 1024, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new AciE2eeException(AciE2eeError.StreamIntegrity, $"the gateway has no signature for {chatId} (HTTP {(int)response.StatusCode}), so the bytes received cannot be checked ({Why})");
        }

        var checks = SignedResponseVerifier.Verify(signature, sent, received, receiptKey, "ed25519");
        if (checks.Any(c => c.Outcome == CheckOutcome.Failed))
        {
            var first = checks.First(c => c.Outcome == CheckOutcome.Failed);
            throw new AciE2eeException(AciE2eeError.StreamIntegrity, $"the bytes received are not the bytes the gateway signed: {first.Detail} ({Why})");
        }

        return checks;
    }

    private static AciE2eeException Refused(int status, byte[] body)
    {
        string? code = null;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object && e.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String)
            {
                code = c.GetString();
            }
        }
        catch (JsonException)
        {
        }

        return AciE2eeErrors.FromCode(code) is { } error
            ? new AciE2eeException(error, error == AciE2eeError.ModelError
                ? $"the model answered HTTP {status}; the gateway withholds its message on an E2EE request ({code})"
                : $"the gateway refused the E2EE request: {code} (HTTP {status})")
            : new AciE2eeException(AciE2eeError.ResponseNotEncrypted, $"the gateway answered HTTP {status}{(code is null ? string.Empty : " " + code)} without E2EE");
    }

    private static string? DeltaOf(JsonObject chunk, string endpoint)
    {
        if (chunk["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice)
        {
            return null;
        }

        var node = endpoint == AciPayload.CompletionsEndpoint ? choice["text"] : (choice["delta"] as JsonObject)?["content"];
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
    }

    private static string MessageOf(JsonObject answer, string endpoint)
    {
        if (answer["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice)
        {
            return string.Empty;
        }

        var node = endpoint == AciPayload.CompletionsEndpoint ? choice["text"] : (choice["message"] as JsonObject)?["content"];
        return node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : string.Empty;
    }

    private void Authorize(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(_apiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        }
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, int max, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while (buffer.Length < max && (read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, (int)Math.Min(read, max - buffer.Length));
        }

        return buffer.ToArray();
    }
}
