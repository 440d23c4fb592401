using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Client;

/// <summary>The answer and everything checked about it.</summary>
public sealed record ChatVerification
{
    public required int Status { get; init; }

    public required string Content { get; init; }

    public string? ChatId { get; init; }

    /// <summary>The exact response bytes received (for streams: the raw SSE bytes).</summary>
    public required byte[] ResponseBytes { get; init; }

    public string? ReceiptJson { get; init; }

    public required IReadOnlyList<CheckResult> Checks { get; init; }

    /// <summary>True only when the answer was signed by the attested key over exactly these bytes and the receipt verified.</summary>
    public bool Verified => Checks.Count > 0 && Checks.All(c => c.Outcome != CheckOutcome.Failed)
        && Checks.Any(c => c.Name == SignedResponseVerifier.SignerCheck && c.Outcome == CheckOutcome.Passed || c.Name == SignedResponseVerifier.SignatureCheck && c.Outcome == CheckOutcome.Passed);
}

/// <summary>
/// Sends a chat completion to an attested node and verifies the answer end to end: the exact bytes sent and received
/// are hashed here, then <c>/v1/signature/{id}</c> must sign exactly those hashes with the key attested in this run,
/// and <c>/v1/receipt/{id}</c> must verify under that key too. Streaming answers are hashed over the raw SSE bytes.
/// </summary>
public sealed class VerifiedChat
{
    public const int MaxResponseBytes = 16 * 1024 * 1024;

    private readonly HttpClient _http;
    private readonly Uri _baseAddress;
    private readonly string? _apiKey;

    public VerifiedChat(HttpClient http, Uri baseAddress, string? apiKey = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(baseAddress);
        _http = http;
        _baseAddress = baseAddress;
        _apiKey = apiKey;
    }

    /// <summary>A chat request body (compact JSON) for one user message.</summary>
    public static byte[] RequestBody(string model, string prompt, bool stream)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", model);
            w.WriteStartArray("messages");
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WriteString("content", prompt);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteBoolean("stream", stream);
            w.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>Sends <paramref name="requestBody"/>, streams deltas to <paramref name="onDelta"/>, then verifies the answer against <paramref name="attestedAddress"/>.</summary>
    public async Task<ChatVerification> SendAsync(byte[] requestBody, string attestedAddress, string signingAlgo, Action<string>? onDelta = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestBody);
        ArgumentNullException.ThrowIfNull(attestedAddress);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_baseAddress, "v1/chat/completions")) { Content = new ByteArrayContent(requestBody) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        Authorize(request);
        try
        {
            return await SendAndVerifyAsync(request, requestBody, attestedAddress, signingAlgo, onDelta, cancellationToken).ConfigureAwait(false);
        }
        catch (AttestationException e)
        {
            // An end-to-end encrypted transport refused the exchange (e.g. a tampered, reordered or truncated chunk,
            // a stripped response nonce): nothing unauthenticated was shown beyond what had already authenticated.
            return new ChatVerification { Status = 0, Content = string.Empty, ResponseBytes = [], Checks = [CheckResult.Fail(TransportCheck, e.Code, e.Message)] };
        }
    }

    /// <summary>The check that names an end-to-end encrypted transport's refusal.</summary>
    public const string TransportCheck = "e2ee.transport";

    private async Task<ChatVerification> SendAndVerifyAsync(HttpRequestMessage request, byte[] requestBody, string attestedAddress, string signingAlgo, Action<string>? onDelta, CancellationToken cancellationToken)
    {
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        var isStream = response.Content.Headers.ContentType?.MediaType == "text/event-stream";
        var received = new MemoryStream();
        var content = new StringBuilder();
        string? chatId = null;
        await using (var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false))
        {
            var chunk = new byte[16384];
            var pending = new List<byte>();
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (received.Length + read > MaxResponseBytes)
                {
                    return new ChatVerification
                    {
                        Status = (int)response.StatusCode,
                        Content = content.ToString(),
                        ResponseBytes = received.ToArray(),
                        Checks = [CheckResult.Fail("response.size", ErrorCode.MalformedInput, $"the answer is larger than {MaxResponseBytes} bytes")],
                    };
                }

                received.Write(chunk, 0, read);
                if (!isStream)
                {
                    continue;
                }

                pending.AddRange(chunk.AsSpan(0, read));
                int newline;
                while ((newline = pending.IndexOf((byte)'\n')) >= 0)
                {
                    var line = Encoding.UTF8.GetString(pending.GetRange(0, newline).ToArray()).TrimEnd('\r');
                    pending.RemoveRange(0, newline + 1);
                    if (line.StartsWith("data: ", StringComparison.Ordinal) && line != "data: [DONE]")
                    {
                        var (id, delta) = ReadChunk(line["data: ".Length..]);
                        chatId ??= id;
                        if (!string.IsNullOrEmpty(delta))
                        {
                            content.Append(delta);
                            onDelta?.Invoke(delta);
                        }
                    }
                }
            }
        }

        var bytes = received.ToArray();
        if (!isStream)
        {
            (chatId, var message) = ReadCompletion(bytes);
            content.Append(message);
            onDelta?.Invoke(message);
        }

        var checks = new List<CheckResult>();
        if (!response.IsSuccessStatusCode)
        {
            checks.Add(CheckResult.Fail("response.status", ErrorCode.ReportUnavailable, $"the node answered HTTP {(int)response.StatusCode}"));
        }

        if (chatId is null)
        {
            checks.Add(CheckResult.Fail(SignedResponseVerifier.TextCheck, ErrorCode.ResponseSignatureInvalid, "UNSIGNED: the answer carries no id to fetch its signature by"));
            return new ChatVerification { Status = (int)response.StatusCode, Content = content.ToString(), ResponseBytes = bytes, Checks = checks };
        }

        // Under EHBP the node signs the ciphertext that crossed the network: verify against those exact bytes.
        var signedRequest = requestBody;
        var signedResponse = bytes;
        if (request.Options.TryGetValue(E2ee.Ehbp.EhbpHandler.WireKey, out var wire))
        {
            if (wire.ResponseOverflowed)
            {
                checks.Add(CheckResult.Fail("response.size", ErrorCode.MalformedInput, "the encrypted answer was too large to keep for its signature check"));
            }

            signedRequest = wire.RequestBody;
            signedResponse = wire.ResponseBody;
        }

        var (sigStatus, signature) = await GetAsync($"v1/signature/{Uri.EscapeDataString(chatId)}?signing_algo={Uri.EscapeDataString(signingAlgo)}", cancellationToken).ConfigureAwait(false);
        if (sigStatus != 200)
        {
            checks.Add(CheckResult.Fail(SignedResponseVerifier.TextCheck, ErrorCode.ResponseSignatureInvalid, $"UNSIGNED: the node has no signature for {chatId} (HTTP {sigStatus})"));
        }
        else
        {
            checks.AddRange(SignedResponseVerifier.Verify(signature, signedRequest, signedResponse, attestedAddress, signingAlgo));
        }

        var (receiptStatus, receipt) = await GetAsync($"v1/receipt/{Uri.EscapeDataString(chatId)}", cancellationToken).ConfigureAwait(false);
        string? receiptJson = null;
        if (receiptStatus == 200)
        {
            receiptJson = Encoding.UTF8.GetString(receipt);
            checks.AddRange(ReceiptVerifier.Verify(receipt, attestedAddress, signedRequest, signedResponse));
        }
        else
        {
            checks.Add(CheckResult.Skip(ReceiptVerifier.FormatCheck, $"the node offers no receipt for {chatId} (HTTP {receiptStatus})"));
        }

        return new ChatVerification
        {
            Status = (int)response.StatusCode,
            Content = content.ToString(),
            ChatId = chatId,
            ResponseBytes = bytes,
            ReceiptJson = receiptJson,
            Checks = checks,
        };
    }

    private async Task<(int Status, byte[] Body)> GetAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_baseAddress, path));
            Authorize(request);
            using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.Content.Headers.ContentLength > ReceiptVerifier.MaxReceiptBytes * 4)
            {
                return (0, []);
            }

            return ((int)response.StatusCode, await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (HttpRequestException)
        {
            return (0, []);
        }
    }

    private void Authorize(HttpRequestMessage request)
    {
        if (!string.IsNullOrEmpty(_apiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
        }
    }

    private static (string? Id, string? Delta) ReadChunk(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            var id = root.TryGetProperty("id", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString() : null;
            string? delta = null;
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("delta", out var d) && d.ValueKind == JsonValueKind.Object
                && d.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
            {
                delta = c.GetString();
            }

            return (id, delta);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }

    private static (string? Id, string Message) ReadCompletion(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var id = root.TryGetProperty("id", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString() : null;
            var message = root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("message", out var m) && m.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String
                ? c.GetString() ?? string.Empty
                : string.Empty;
            return (id, message);
        }
        catch (JsonException)
        {
            return (null, string.Empty);
        }
    }
}
