using System.Buffers;
using System.Text;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// Splits an SSE byte stream into events the way the reference transformer does (e2ee-v2.md, reference
/// <c>E2eeSseTransformer</c>): lines end at <c>\n</c> (a trailing <c>\r</c> is dropped), an empty line ends an event, the
/// <c>data:</c> lines of an event are joined with <c>\n</c> (one leading space removed). For each event the callback
/// gets the non-data lines and the joined data (null when the event has none) and writes the event's output.
/// </summary>
public sealed class AciSseSplitter(Action<IReadOnlyList<string>, string?, IBufferWriter<byte>> onEvent, int maxEventBytes = 4 * 1024 * 1024)
{
    private readonly ArrayBufferWriter<byte> _line = new();
    private readonly List<string> _otherLines = [];
    private StringBuilder? _data;
    private int _eventBytes;

    /// <summary>Feeds bytes; complete events are written to <paramref name="output"/>.</summary>
    public void Feed(ReadOnlySpan<byte> bytes, IBufferWriter<byte> output)
    {
        while (!bytes.IsEmpty)
        {
            var newline = bytes.IndexOf((byte)'\n');
            var part = newline < 0 ? bytes : bytes[..newline];
            _eventBytes += part.Length + 1;
            if (_eventBytes > maxEventBytes)
            {
                throw new InvalidDataException("an SSE event is larger than allowed");
            }

            _line.Write(part);
            if (newline < 0)
            {
                return;
            }

            Line(output);
            bytes = bytes[(newline + 1)..];
        }
    }

    /// <summary>End of stream: a last event without its blank line is still processed.</summary>
    public void Complete(IBufferWriter<byte> output)
    {
        if (_line.WrittenCount > 0)
        {
            Line(output);
        }

        if (_data is not null || _otherLines.Count > 0)
        {
            Dispatch(output);
        }
    }

    private void Line(IBufferWriter<byte> output)
    {
        var span = _line.WrittenSpan;
        if (span.EndsWith((byte)'\r'))
        {
            span = span[..^1];
        }

        var text = Encoding.UTF8.GetString(span);
        _line.ResetWrittenCount();
        if (text.Length == 0)
        {
            if (_data is not null || _otherLines.Count > 0)
            {
                Dispatch(output);
            }

            return;
        }

        if (text.StartsWith("data:", StringComparison.Ordinal))
        {
            var value = text[5..];
            if (value.StartsWith(' '))
            {
                value = value[1..];
            }

            if (_data is null)
            {
                _data = new StringBuilder(value);
            }
            else
            {
                _data.Append('\n').Append(value);
            }
        }
        else
        {
            _otherLines.Add(text);
        }
    }

    private void Dispatch(IBufferWriter<byte> output)
    {
        var data = _data?.ToString();
        onEvent(_otherLines, data, output);
        _otherLines.Clear();
        _data = null;
        _eventBytes = 0;
    }

    /// <summary>Writes an event: the given non-data lines, then <c>data: …</c> when there is data, then a blank line.</summary>
    public static void WriteEvent(IBufferWriter<byte> output, IReadOnlyList<string> otherLines, string? data)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(otherLines);
        var b = new StringBuilder();
        foreach (var line in otherLines)
        {
            b.Append(line).Append('\n');
        }

        if (data is not null)
        {
            foreach (var line in data.Split('\n'))
            {
                b.Append("data: ").Append(line).Append('\n');
            }
        }

        b.Append('\n');
        output.Write(Encoding.UTF8.GetBytes(b.ToString()));
    }
}
