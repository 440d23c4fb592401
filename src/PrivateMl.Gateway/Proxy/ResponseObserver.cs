using System.Buffers;
using System.Text.Json;

namespace PrivateMl.Gateway.Proxy;

/// <summary>
/// Watches the bytes relayed to the client (without changing them) for the response id, the SSE <c>[DONE]</c>
/// sentinel, the number of SSE data events and the token usage. SSE lines may be split across reads or several may
/// share one; lines longer than <see cref="MaxLineBytes"/> are relayed but not inspected.
/// </summary>
internal sealed class ResponseObserver(bool eventStream, int maxObservedBytes)
{
    public const int MaxLineBytes = 1024 * 1024;
    private static readonly byte[] DataPrefix = "data:"u8.ToArray();
    private static readonly byte[] UsageMarker = "\"usage\""u8.ToArray();

    private readonly ArrayBufferWriter<byte> _pending = new();
    private bool _pendingTooLong;

    public string? ChatId { get; private set; }

    public bool SawDone { get; private set; }

    /// <summary>SSE data events other than <c>[DONE]</c>.</summary>
    public long DataEvents { get; private set; }

    public long CompletionTokens { get; private set; }

    public long PromptTokens { get; private set; }

    public void Observe(ReadOnlySpan<byte> chunk)
    {
        if (!eventStream)
        {
            if (_pending.WrittenCount + chunk.Length <= maxObservedBytes)
            {
                _pending.Write(chunk);
            }
            else
            {
                _pendingTooLong = true;
            }

            return;
        }

        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            if (newline < 0)
            {
                Append(chunk);
                return;
            }

            Append(chunk[..newline]);
            if (!_pendingTooLong)
            {
                Line(_pending.WrittenSpan);
            }

            _pending.ResetWrittenCount();
            _pendingTooLong = false;
            chunk = chunk[(newline + 1)..];
        }
    }

    /// <summary>Called when the body ended: a non-streaming body is parsed once.</summary>
    public void Complete()
    {
        if (!eventStream && !_pendingTooLong)
        {
            Inspect(_pending.WrittenSpan, readId: true);
        }
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_pendingTooLong || _pending.WrittenCount + bytes.Length > MaxLineBytes)
        {
            _pendingTooLong = true;
            return;
        }

        _pending.Write(bytes);
    }

    private void Line(ReadOnlySpan<byte> line)
    {
        if (line.EndsWith((byte)'\r'))
        {
            line = line[..^1];
        }

        if (!line.StartsWith(DataPrefix))
        {
            return;
        }

        var payload = line[DataPrefix.Length..];
        if (payload.StartsWith((byte)' '))
        {
            payload = payload[1..];
        }

        if (payload.SequenceEqual("[DONE]"u8))
        {
            SawDone = true;
            return;
        }

        DataEvents++;
        var wantId = ChatId is null;
        if (wantId || payload.IndexOf(UsageMarker) >= 0)
        {
            Inspect(payload, wantId);
        }
    }

    private void Inspect(ReadOnlySpan<byte> json, bool readId)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (readId && reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && ChatId is null)
                    {
                        var id = reader.GetString()!;
                        ChatId = id.Length is > 0 and <= 256 ? id : null;
                    }

                    continue;
                }

                if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadUsage(ref reader);
                    }

                    continue;
                }

                reader.Read();
                reader.TrySkip();
            }
        }
        catch (JsonException)
        {
            // Not JSON: relayed as it is, nothing to learn from it.
        }
    }

    private void ReadUsage(ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var completion = reader.ValueTextEquals("completion_tokens"u8);
            var prompt = reader.ValueTextEquals("prompt_tokens"u8);
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
            {
                if (completion)
                {
                    CompletionTokens = value;
                }
                else if (prompt)
                {
                    PromptTokens = value;
                }
            }
            else
            {
                reader.TrySkip();
            }
        }
    }
}
