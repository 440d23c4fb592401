using System.Text;
using PrivateMl.Inference.Upstream.Http11;

namespace PrivateMl.Inference.Tests.Upstream.Http11;

/// <summary>
/// Response heads as RFC 9112 frames them: where the body ends (§6.3), whether the connection may carry another
/// request, and which heads are refused outright because two readers could take them two ways.
/// </summary>
public sealed class ResponseHeadTests
{
    [Theory]
    [InlineData("")]
    [InlineData("HTTP/1.1 200 OK")]
    [InlineData("HTTP/1.1 200 OK\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r")]
    public void AnIncompleteHead_IsNotParsedYet(string received)
    {
        Assert.False(ResponseHead.TryParse(Encoding.ASCII.GetBytes(received), requestWasHead: false, out var head, out var consumed));
        Assert.Null(head);
        Assert.Equal(0, consumed);
    }

    [Fact]
    public void AHead_ConsumesUpToItsBlankLine_AndLeavesTheBody()
    {
        const string Head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n";
        var head = Parse(Head + "hello", out var consumed);

        Assert.Equal(Head.Length, consumed);
        Assert.Equal(200, head.StatusCode);
        Assert.Equal("text/plain", head.ContentType);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, nameof(BodyFraming.Chunked), 0, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, nameof(BodyFraming.Chunked), 0, true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false, nameof(BodyFraming.ContentLength), 12, true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n", false, nameof(BodyFraming.ContentLength), 12, true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n", false, nameof(BodyFraming.Chunked), 12, false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 12\r\n\r\n", false, nameof(BodyFraming.Chunked), 12, false)]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", false, nameof(BodyFraming.UntilClose), 0, false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", false, nameof(BodyFraming.UntilClose), 0, false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", false, nameof(BodyFraming.Chunked), 0, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", false, nameof(BodyFraming.UntilClose), 0, false)]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\n", false, nameof(BodyFraming.None), 0, true)]
    [InlineData("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false, nameof(BodyFraming.None), 5, true)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, nameof(BodyFraming.None), 100, true)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false, nameof(BodyFraming.None), 0, true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, nameof(BodyFraming.None), 100, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, nameof(BodyFraming.None), 0, true)]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", true, nameof(BodyFraming.None), 0, true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, nameof(BodyFraming.None), 0, true)]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\n", false, nameof(BodyFraming.None), 0, true)]
    [InlineData("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", false, nameof(BodyFraming.None), 0, true)]
    public void TheBodyFraming_FollowsRfc9112(string received, bool requestWasHead, string framing, long contentLength, bool keepAlive)
    {
        var head = Parse(received, requestWasHead);

        Assert.Equal(Enum.Parse<BodyFraming>(framing), head.Framing);
        if (head.Framing == BodyFraming.ContentLength)
        {
            Assert.Equal(contentLength, head.ContentLength);
        }

        Assert.Equal(keepAlive, head.KeepAlive);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\n", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Upgrade\r\n\r\n", true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: closed\r\n\r\n", true)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", true)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: Keep-Alive\r\n\r\n", true)]
    [InlineData("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\n", false)]
    public void TheConnectionIsKept_OnlyWhenBothTheVersionAndConnectionHeaderAllowIt(string received, bool keepAlive)
    {
        Assert.Equal(keepAlive, Parse(received).KeepAlive);
    }

    [Fact]
    public void HeaderNames_AreCaseInsensitive()
    {
        var chunked = Parse("HTTP/1.1 200 OK\r\nTRANSFER-encoding: CHUNKED\r\nCONTENT-TYPE: text/event-stream\r\n\r\n");
        Assert.Equal(BodyFraming.Chunked, chunked.Framing);
        Assert.Equal("text/event-stream", chunked.ContentType);

        var closing = Parse("HTTP/1.1 200 OK\r\ncontent-LENGTH: 7\r\nconnection: CLOSE\r\n\r\n");
        Assert.Equal(BodyFraming.ContentLength, closing.Framing);
        Assert.Equal(7, closing.ContentLength);
        Assert.False(closing.KeepAlive);
    }

    [Theory]
    [InlineData("Content-Type: text/event-stream; charset=utf-8\r\n", "text/event-stream; charset=utf-8")]
    [InlineData("Content-Type:application/json\r\n", "application/json")]
    [InlineData("Content-Type: \t Application/JSON;Charset=\"UTF-8\" \t\r\n", "Application/JSON;Charset=\"UTF-8\"")]
    [InlineData("Content-Type: not a media type\r\n", "not a media type")]
    [InlineData("", null)]
    public void TheContentType_IsReturnedAsSent(string header, string? contentType)
    {
        Assert.Equal(contentType, Parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + header + "\r\n").ContentType);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK", 200)]
    [InlineData("HTTP/1.1 404 Not Found", 404)]
    [InlineData("HTTP/1.1 503 ", 503)]
    [InlineData("HTTP/1.1 599", 599)]
    [InlineData("HTTP/1.0 100 Continue", 100)]
    public void TheStatusCode_IsRead_WithOrWithoutAReason(string statusLine, int status)
    {
        Assert.Equal(status, Parse(statusLine + "\r\nContent-Length: 0\r\n\r\n").StatusCode);
    }

    [Theory]
    [InlineData("HTTP/2 200 OK\r\n\r\n")]
    [InlineData("HTTP/2.0 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.x 200 OK\r\n\r\n")]
    [InlineData("http/1.1 200 OK\r\n\r\n")]
    [InlineData("ICY 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 20 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 2x0 OK\r\n\r\n")]
    [InlineData("HTTP/1.1  200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 099 Low\r\n\r\n")]
    [InlineData("\r\nHTTP/1.1 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-Header-Without-Colon\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\n: no name\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length\t: 5\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded: 2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n\tfolded\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\n Content-Length: 5\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: a\nb\r\n\r\n")]
    public void AMalformedHead_IsAProtocolError(string received)
    {
        Assert.Throws<Http11ProtocolException>(() => Parse(received));
    }

    [Fact]
    public void AHeadOf64KiB_Parses()
    {
        var head = HeadOfLength(ResponseHead.MaxBytes);

        var parsed = Parse(head + "body", out var consumed);

        Assert.Equal(ResponseHead.MaxBytes, consumed);
        Assert.Equal(200, parsed.StatusCode);
    }

    [Fact]
    public void AHeadOver64KiB_IsAProtocolError_WithItsEndPresent()
    {
        var head = HeadOfLength(ResponseHead.MaxBytes + 1);

        Assert.Throws<Http11ProtocolException>(() => Parse(head));
    }

    [Fact]
    public void AHeadOver64KiB_IsAProtocolError_BeforeItsEndArrives()
    {
        // No end in sight after 64 KiB: waiting for more would only let the buffer grow.
        var partial = HeadOfLength(ResponseHead.MaxBytes + 10)[..ResponseHead.MaxBytes];
        Assert.DoesNotContain("\r\n\r\n", partial, StringComparison.Ordinal);

        Assert.Throws<Http11ProtocolException>(() => Parse(partial));

        // One byte less is only a head still arriving.
        Assert.False(ResponseHead.TryParse(Encoding.ASCII.GetBytes(partial[..^1]), requestWasHead: false, out _, out _));
    }

    private static ResponseHead Parse(string received, bool requestWasHead = false) => Parse(received, out _, requestWasHead);

    private static ResponseHead Parse(string received, out int consumed, bool requestWasHead = false)
    {
        Assert.True(ResponseHead.TryParse(Encoding.Latin1.GetBytes(received), requestWasHead, out var head, out consumed));
        return head!;
    }

    /// <summary>A complete 200 head, blank line included, of exactly <paramref name="length"/> bytes.</summary>
    private static string HeadOfLength(int length)
    {
        const string Start = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Padding: ";
        const string End = "\r\n\r\n";
        var head = Start + new string('p', length - Start.Length - End.Length) + End;
        Assert.Equal(length, head.Length);
        return head;
    }
}
