using System.Buffers.Text;
using System.Text;

namespace PrivateMl.Inference.Upstream.Http11;

/// <summary>How a response's body is delimited (RFC 9112 §6.3).</summary>
internal enum BodyFraming
{
    None,
    ContentLength,
    Chunked,
    UntilClose,
}

/// <summary>What the relay needs from a response head: status, content type, how the body ends, whether the connection stays.</summary>
internal sealed record ResponseHead(int StatusCode, string? ContentType, BodyFraming Framing, long ContentLength, bool KeepAlive)
{
    /// <summary>Most bytes a response head (status line and headers) may take, as <c>SocketsHttpHandler</c>'s default.</summary>
    public const int MaxBytes = 64 * 1024;

    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    /// <summary>
    /// Parses the head at the start of <paramref name="buffer"/>: false while its end has not arrived, else the head
    /// and the bytes it took. Throws <see cref="Http11ProtocolException"/> when it is not HTTP/1.1 this client reads.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, bool requestWasHead, out ResponseHead? head, out int consumed)
    {
        head = null;
        consumed = 0;
        var end = buffer.IndexOf(HeadEnd);
        if (end < 0)
        {
            if (buffer.Length >= MaxBytes)
            {
                throw new Http11ProtocolException($"the response head is longer than {MaxBytes} bytes");
            }

            return false;
        }

        if (end + HeadEnd.Length > MaxBytes)
        {
            throw new Http11ProtocolException($"the response head is longer than {MaxBytes} bytes");
        }

        consumed = end + HeadEnd.Length;
        var lines = buffer[..(end + 2)];
        var lineEnd = lines.IndexOf("\r\n"u8);
        var (status, minor) = ParseStatusLine(lines[..lineEnd]);
        lines = lines[(lineEnd + 2)..];

        string? contentType = null;
        long contentLength = -1;
        var chunked = false;
        var transferEncoded = false;
        var close = false;
        var keepAliveAsked = false;
        while (!lines.IsEmpty)
        {
            lineEnd = lines.IndexOf("\r\n"u8);
            var line = lines[..lineEnd];
            lines = lines[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0 || line[0] is (byte)' ' or (byte)'\t' || line[..colon].IndexOfAny((byte)' ', (byte)'\t') >= 0)
            {
                throw new Http11ProtocolException("a response header line is malformed");
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (value.IndexOfAny((byte)'\r', (byte)'\n', (byte)0) >= 0)
            {
                throw new Http11ProtocolException("a response header value holds a control character");
            }

            if (Ascii.EqualsIgnoreCase(name, "content-type"u8))
            {
                contentType = Encoding.Latin1.GetString(value);
            }
            else if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                // Digits only (RFC 9112 §6.2): the number parser would also take a sign, which other readers refuse.
                if (value.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0
                    || !Utf8Parser.TryParse(value, out long length, out var used) || used != value.Length || (contentLength >= 0 && contentLength != length))
                {
                    throw new Http11ProtocolException("the response's Content-Length is malformed or given twice differently");
                }

                contentLength = length;
            }
            else if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
            {
                transferEncoded = true;
                chunked = EndsWithToken(value, "chunked"u8);
            }
            else if (Ascii.EqualsIgnoreCase(name, "connection"u8))
            {
                close |= HasToken(value, "close"u8);
                keepAliveAsked |= HasToken(value, "keep-alive"u8);
            }
        }

        // HTTP/1.0 keeps a connection only when asked to; a body framed by both headers is read by Transfer-Encoding
        // and the connection closed after it (RFC 9112 §6.3), as is one that only the close delimits.
        var keepAlive = !close && (minor >= 1 || keepAliveAsked) && !(transferEncoded && contentLength >= 0);
        BodyFraming framing;
        if (requestWasHead || status is 204 or 304 || status < 200)
        {
            framing = BodyFraming.None;
        }
        else if (transferEncoded)
        {
            framing = chunked ? BodyFraming.Chunked : BodyFraming.UntilClose;
        }
        else if (contentLength >= 0)
        {
            framing = contentLength == 0 ? BodyFraming.None : BodyFraming.ContentLength;
        }
        else
        {
            framing = BodyFraming.UntilClose;
        }

        if (framing == BodyFraming.UntilClose)
        {
            keepAlive = false;
        }

        head = new ResponseHead(status, contentType, framing, Math.Max(contentLength, 0), keepAlive);
        return true;
    }

    private static (int Status, int Minor) ParseStatusLine(ReadOnlySpan<byte> line)
    {
        // HTTP/1.x SP 3DIGIT SP reason (the reason may be empty, and a few servers leave out the space before it).
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || !char.IsAsciiDigit((char)line[7]) || line[8] != (byte)' '
            || !char.IsAsciiDigit((char)line[9]) || !char.IsAsciiDigit((char)line[10]) || !char.IsAsciiDigit((char)line[11])
            || (line.Length > 12 && line[12] != (byte)' '))
        {
            throw new Http11ProtocolException("the upstream's status line is not HTTP/1.x");
        }

        var status = ((line[9] - '0') * 100) + ((line[10] - '0') * 10) + (line[11] - '0');
        if (status < 100)
        {
            throw new Http11ProtocolException("the upstream's status code is out of range");
        }

        return (status, line[7] - '0');
    }

    private static bool EndsWithToken(ReadOnlySpan<byte> list, ReadOnlySpan<byte> token)
    {
        var last = list.LastIndexOf((byte)',');
        return Ascii.EqualsIgnoreCase(list[(last + 1)..].Trim(" \t"u8), token);
    }

    private static bool HasToken(ReadOnlySpan<byte> list, ReadOnlySpan<byte> token)
    {
        foreach (var range in list.Split((byte)','))
        {
            if (Ascii.EqualsIgnoreCase(list[range].Trim(" \t"u8), token))
            {
                return true;
            }
        }

        return false;
    }
}
