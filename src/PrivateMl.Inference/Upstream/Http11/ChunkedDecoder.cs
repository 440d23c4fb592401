namespace PrivateMl.Inference.Upstream.Http11;

/// <summary>
/// Decodes an HTTP/1.1 chunked body (RFC 9112 §7.1) from bytes as they arrive, split anywhere: chunk sizes, extensions
/// (skipped) and trailers (skipped) are framing, the chunks' data is the body. Strict where a lenient reader would let
/// framing be read two ways: CRLF line ends only, at least one hex digit, no size beyond 2^60, bounded lines.
/// </summary>
internal struct ChunkedDecoder
{
    private const int MaxSizeDigits = 15;
    private const int MaxExtensionBytes = 4 * 1024;
    private const int MaxTrailerBytes = 16 * 1024;

    private State _state;
    private long _remaining;
    private int _lineBytes;
    private int _trailerBytes;

    private enum State
    {
        SizeStart,
        Size,
        Extension,
        SizeLf,
        Data,
        DataCr,
        DataLf,
        TrailerStart,
        TrailerLine,
        TrailerLineLf,
        TrailerEndLf,
        Done,
    }

    /// <summary>True once the last chunk and the trailer section's end were read.</summary>
    public readonly bool IsDone => _state == State.Done;

    /// <summary>
    /// Decodes from <paramref name="input"/> into <paramref name="output"/> until the input is used up, the output is
    /// full, or the body ended; returns the input bytes consumed. Throws <see cref="Http11ProtocolException"/> on bad framing.
    /// </summary>
    public int Decode(ReadOnlySpan<byte> input, Span<byte> output, out int written)
    {
        var consumed = 0;
        written = 0;
        while (consumed < input.Length && _state != State.Done)
        {
            if (_state == State.Data)
            {
                var room = output.Length - written;
                if (room == 0)
                {
                    break;
                }

                var take = (int)Math.Min(Math.Min(_remaining, input.Length - consumed), room);
                input.Slice(consumed, take).CopyTo(output[written..]);
                consumed += take;
                written += take;
                _remaining -= take;
                if (_remaining == 0)
                {
                    _state = State.DataCr;
                }

                continue;
            }

            Step(input[consumed]);
            consumed++;
        }

        return consumed;
    }

    private void Step(byte b)
    {
        switch (_state)
        {
            case State.SizeStart:
                _remaining = HexValue(b);
                _lineBytes = 1;
                _state = State.Size;
                break;
            case State.Size:
                if (b == (byte)'\r')
                {
                    _state = State.SizeLf;
                }
                else if (b is (byte)';' or (byte)' ' or (byte)'\t')
                {
                    _lineBytes = 0;
                    _state = State.Extension;
                }
                else
                {
                    if (++_lineBytes > MaxSizeDigits)
                    {
                        throw new Http11ProtocolException("a chunk size is too long");
                    }

                    _remaining = (_remaining << 4) | HexValue(b);
                }

                break;
            case State.Extension:
                if (b == (byte)'\r')
                {
                    _state = State.SizeLf;
                }
                else if (b == (byte)'\n' || ++_lineBytes > MaxExtensionBytes)
                {
                    throw new Http11ProtocolException("a chunk extension is malformed or too long");
                }

                break;
            case State.SizeLf:
                Expect(b, (byte)'\n');
                _state = _remaining == 0 ? State.TrailerStart : State.Data;
                break;
            case State.DataCr:
                Expect(b, (byte)'\r');
                _state = State.DataLf;
                break;
            case State.DataLf:
                Expect(b, (byte)'\n');
                _state = State.SizeStart;
                break;
            case State.TrailerStart:
                _state = b == (byte)'\r' ? State.TrailerEndLf : State.TrailerLine;
                CountTrailer(b);
                break;
            case State.TrailerLine:
                CountTrailer(b);
                if (b == (byte)'\r')
                {
                    _state = State.TrailerLineLf;
                }

                break;
            case State.TrailerLineLf:
                Expect(b, (byte)'\n');
                _state = State.TrailerStart;
                break;
            case State.TrailerEndLf:
                Expect(b, (byte)'\n');
                _state = State.Done;
                break;
            default:
                throw new InvalidOperationException("unreachable chunked-decoder state " + _state);
        }
    }

    private void CountTrailer(byte b)
    {
        if (b == (byte)'\n' || ++_trailerBytes > MaxTrailerBytes)
        {
            throw new Http11ProtocolException("the chunked trailer section is malformed or too long");
        }
    }

    private static void Expect(byte actual, byte expected)
    {
        if (actual != expected)
        {
            throw new Http11ProtocolException("chunked framing lacks a CRLF where one belongs");
        }
    }

    private static long HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => throw new Http11ProtocolException("a chunk size is not hexadecimal"),
    };
}

/// <summary>The upstream's bytes are not the HTTP/1.1 this client reads (framing, status line, headers).</summary>
public sealed class Http11ProtocolException(string message) : IOException(message);
