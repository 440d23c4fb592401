using System.Globalization;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.EventLog;

/// <summary>
/// Reads and writes event logs in dstack's JSON form: a compact array of entries
/// (<c>GetQuote.event_log</c>, the RA-TLS event-log extension) or JSON lines (the runtime log file, one entry per
/// line). Output is byte-compatible with dstack (serde_json): keys <c>imr, event_type, digest, event, event_payload</c>
/// in that order, lowercase hex, no whitespace; v2 runtime events add <c>version</c> and <c>preimage</c>.
/// Input is bounded (<see cref="TdxEventLogLimits"/>); anything malformed is an <see cref="AttestationException"/>
/// with <see cref="ErrorCode.EventLogMalformed"/> or <see cref="ErrorCode.EventLogTooLarge"/>.
/// </summary>
public static class TdxEventLog
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 16, CommentHandling = JsonCommentHandling.Disallow };

    /// <summary>Parses a JSON array of entries (the <c>event_log</c> string of GetQuote).</summary>
    public static IReadOnlyList<TdxEvent> Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        CheckSize(json.Length);
        return Parse(Encoding.UTF8.GetBytes(json));
    }

    /// <summary>Parses a JSON array of entries given as UTF-8.</summary>
    public static IReadOnlyList<TdxEvent> Parse(ReadOnlySpan<byte> utf8Json)
    {
        CheckSize(utf8Json.Length);
        var events = new List<TdxEvent>();
        try
        {
            var reader = new Utf8JsonReader(utf8Json, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
            {
                throw Malformed("the event log is not a JSON array");
            }

            while (true)
            {
                if (!reader.Read())
                {
                    throw Malformed("the event log array is not closed");
                }

                if (reader.TokenType == JsonTokenType.EndArray)
                {
                    break;
                }

                if (events.Count == TdxEventLogLimits.MaxEvents)
                {
                    throw new AttestationException(ErrorCode.EventLogTooLarge, $"the event log has more than {TdxEventLogLimits.MaxEvents} entries");
                }

                events.Add(ReadEvent(ref reader, events.Count));
            }

            if (reader.Read())
            {
                throw Malformed("data follows the event log array");
            }
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"the event log is not valid JSON: {e.Message}", e);
        }

        return events;
    }

    /// <summary>Parses one entry (one line of a runtime log file).</summary>
    public static TdxEvent ParseEntry(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        CheckSize(json.Length);
        var utf8 = Encoding.UTF8.GetBytes(json);
        try
        {
            var reader = new Utf8JsonReader(utf8, ReaderOptions);
            if (!reader.Read())
            {
                throw Malformed("the event log entry is empty");
            }

            var result = ReadEvent(ref reader, 0);
            if (reader.Read())
            {
                throw Malformed("data follows the event log entry");
            }

            return result;
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"the event log entry is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>Parses JSON lines (blank lines ignored), as written by <see cref="SerializeLines"/> and dstack v0.5.5's runtime log.</summary>
    public static IReadOnlyList<TdxEvent> ParseLines(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        CheckSize(text.Length);
        var events = new List<TdxEvent>();
        var lineNumber = 0;
        foreach (var range in text.AsSpan().Split('\n'))
        {
            lineNumber++;
            var line = text.AsSpan(range).Trim();
            if (line.IsEmpty)
            {
                continue;
            }

            if (events.Count == TdxEventLogLimits.MaxEvents)
            {
                throw new AttestationException(ErrorCode.EventLogTooLarge, $"the event log has more than {TdxEventLogLimits.MaxEvents} entries");
            }

            try
            {
                events.Add(ParseEntry(line.ToString()));
            }
            catch (AttestationException e)
            {
                throw new AttestationException(e.Code, $"line {lineNumber}: {e.Message}", e);
            }
        }

        return events;
    }

    /// <summary>Writes entries as dstack's compact JSON array.</summary>
    public static string Serialize(IEnumerable<TdxEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var builder = new StringBuilder("[");
        var first = true;
        foreach (var e in events)
        {
            if (!first)
            {
                builder.Append(',');
            }

            first = false;
            Append(builder, e);
        }

        return builder.Append(']').ToString();
    }

    /// <summary>Writes one entry as a compact JSON object (no newline).</summary>
    public static string Serialize(TdxEvent tdxEvent)
    {
        ArgumentNullException.ThrowIfNull(tdxEvent);
        var builder = new StringBuilder();
        Append(builder, tdxEvent);
        return builder.ToString();
    }

    /// <summary>Writes entries as JSON lines, each ending in <c>\n</c>.</summary>
    public static string SerializeLines(IEnumerable<TdxEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var builder = new StringBuilder();
        foreach (var e in events)
        {
            Append(builder, e);
            builder.Append('\n');
        }

        return builder.ToString();
    }

    internal static void Append(StringBuilder builder, TdxEvent e)
    {
        var inv = CultureInfo.InvariantCulture;
        builder.Append("{\"imr\":").Append(e.Imr.ToString(inv))
            .Append(",\"event_type\":").Append(e.EventType.ToString(inv))
            .Append(",\"digest\":\"").Append(Convert.ToHexStringLower(e.Digest.Span))
            .Append("\",\"event\":");
        JsonText.AppendString(builder, e.Event);
        builder.Append(",\"event_payload\":\"").Append(Convert.ToHexStringLower(e.EventPayload.Span)).Append('"');
        if (e.Version == TdxEventLogVersion.V2)
        {
            builder.Append(",\"version\":2");
            if (e.IsRuntimeEvent)
            {
                builder.Append(",\"preimage\":\"")
                    .Append(Convert.ToHexStringLower(TdxEvent.RuntimeDigestPreimage(e.Event, e.EventPayload.Span, e.Version)))
                    .Append('"');
            }
        }

        builder.Append('}');
    }

    /// <summary>Reads one entry; the reader is on its StartObject and is left on its EndObject.</summary>
    internal static TdxEvent ReadEvent(ref Utf8JsonReader reader, int index)
    {
        try
        {
            return ReadEventCore(ref reader, index);
        }
        catch (InvalidOperationException e)
        {
            // Utf8JsonReader.GetString throws this for escapes that form no valid UTF-16 (a lone surrogate).
            throw new AttestationException(ErrorCode.EventLogMalformed, $"entry {index} holds a string that is not valid Unicode", e);
        }
    }

    private static TdxEvent ReadEventCore(ref Utf8JsonReader reader, int index)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Malformed($"entry {index} is not a JSON object");
        }

        uint? imr = null;
        uint? eventType = null;
        byte[]? digest = null;
        string? name = null;
        byte[]? payload = null;
        uint? version = null;
        byte[]? preimage = null;

        while (true)
        {
            if (!reader.Read())
            {
                throw Malformed($"entry {index} is not closed");
            }

            if (reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            var property = reader.GetString()!;
            if (!reader.Read())
            {
                throw Malformed($"entry {index} is truncated");
            }

            switch (property)
            {
                case "imr":
                    imr = ReadUInt32(ref reader, index, property, imr);
                    break;
                case "event_type":
                    eventType = ReadUInt32(ref reader, index, property, eventType);
                    break;
                case "digest":
                    digest = ReadHex(ref reader, index, property, digest, TdxEventLogLimits.MaxPayloadBytes);
                    break;
                case "event":
                    if (name is not null)
                    {
                        throw Malformed($"entry {index} repeats \"event\"");
                    }

                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw Malformed($"entry {index}: \"event\" is not a string");
                    }

                    if (reader.ValueSpan.Length > TdxEventLogLimits.MaxEventNameChars * 6)
                    {
                        throw new AttestationException(ErrorCode.EventLogTooLarge, $"entry {index}: event name is too long");
                    }

                    name = reader.GetString()!;
                    break;
                case "event_payload":
                    payload = ReadHex(ref reader, index, property, payload, TdxEventLogLimits.MaxPayloadBytes);
                    break;
                case "version":
                    version = ReadUInt32(ref reader, index, property, version);
                    break;
                case "preimage":
                    preimage = ReadHex(ref reader, index, property, preimage, (2 * TdxEventLogLimits.MaxPayloadBytes) + (6 * TdxEventLogLimits.MaxEventNameChars) + 64);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        if (imr is null || eventType is null || name is null || payload is null)
        {
            throw Malformed($"entry {index} lacks one of \"imr\", \"event_type\", \"event\", \"event_payload\"");
        }

        if (imr >= TdxEvent.RtmrCount)
        {
            throw Malformed($"entry {index} has imr {imr}; a TD has RTMR0..RTMR3 (imr 0..3)");
        }

        var logVersion = version switch
        {
            null or 1 => TdxEventLogVersion.V1,
            2 => TdxEventLogVersion.V2,
            _ => throw Malformed($"entry {index} has unknown version {version}"),
        };

        var result = new TdxEvent((int)imr.Value, eventType.Value, digest ?? [], name, payload, logVersion);
        if (preimage is not null && result.IsRuntimeEvent
            && !preimage.AsSpan().SequenceEqual(TdxEvent.RuntimeDigestPreimage(name, payload, logVersion)))
        {
            throw new AttestationException(ErrorCode.EventLogDigestMismatch, $"entry {index} (\"{name}\"): its preimage is not the canonical form of its name and payload");
        }

        return result;
    }

    private static uint ReadUInt32(ref Utf8JsonReader reader, int index, string property, uint? previous)
    {
        if (previous is not null)
        {
            throw Malformed($"entry {index} repeats \"{property}\"");
        }

        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetUInt32(out var value))
        {
            throw Malformed($"entry {index}: \"{property}\" is not an unsigned 32-bit integer");
        }

        return value;
    }

    private static byte[] ReadHex(ref Utf8JsonReader reader, int index, string property, byte[]? previous, int maxBytes)
    {
        if (previous is not null)
        {
            throw Malformed($"entry {index} repeats \"{property}\"");
        }

        if (reader.TokenType != JsonTokenType.String)
        {
            throw Malformed($"entry {index}: \"{property}\" is not a hex string");
        }

        if (reader.ValueSpan.Length / 2 > maxBytes)
        {
            throw new AttestationException(ErrorCode.EventLogTooLarge, $"entry {index}: \"{property}\" is longer than {maxBytes} bytes");
        }

        var text = reader.GetString()!;
        if (text.Length % 2 != 0)
        {
            throw Malformed($"entry {index}: \"{property}\" has an odd number of hex digits");
        }

        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException e)
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"entry {index}: \"{property}\" is not hex", e);
        }
    }

    private static void CheckSize(int length)
    {
        if (length > TdxEventLogLimits.MaxEventLogBytes)
        {
            throw new AttestationException(ErrorCode.EventLogTooLarge, $"the event log is {length} bytes; the limit is {TdxEventLogLimits.MaxEventLogBytes}");
        }
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.EventLogMalformed, message);
}
