using System.Text;
using PrivateMl.Inference.Upstream.Http11;

namespace PrivateMl.Inference.Tests.Upstream.Http11;

/// <summary>
/// The chunked decoder on its own: a body's bytes come out the same however the wire splits them and however small
/// the caller's buffer is, the framing around them is strict (so no two readers can disagree on where the body ends),
/// and nothing after the body's end is taken (it belongs to the next response on the connection).
/// </summary>
public sealed class ChunkedDecoderTests
{
    // Vectors are named so that test names stay short when an encoding is kilobytes long.
    private static readonly Dictionary<string, (string Encoded, string Body)> Valid = new()
    {
        ["two chunks"] = ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
        ["upper-case hex"] = ("A\r\n0123456789\r\n1F\r\n" + new string('x', 31) + "\r\n0\r\n\r\n", "0123456789" + new string('x', 31)),
        ["lower-case hex"] = ("a\r\n0123456789\r\n1f\r\n" + new string('y', 31) + "\r\n0\r\n\r\n", "0123456789" + new string('y', 31)),
        ["leading zeros up to 15 digits"] = ("000000000000005\r\nhello\r\n00\r\n\r\n", "hello"),
        ["chunk extensions"] = ("5;a=b\r\nhello\r\n3;name=\"quoted;value\";flag\r\n!!!\r\n0;last=yes\r\n\r\n", "hello!!!"),
        ["whitespace before an extension"] = ("5 ;a=b\r\nhello\r\n0\t;x\r\n\r\n", "hello"),
        ["a long extension within the limit"] = ("4;" + new string('e', 4000) + "\r\ndata\r\n0\r\n\r\n", "data"),
        ["trailers"] = ("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n", "hello"),
        ["zero-length body"] = ("0\r\n\r\n", ""),
        ["zero-length body with a trailer"] = ("0\r\nX: y\r\n\r\n", ""),
        ["CR LF inside the data"] = ("4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"),
        ["a chunk that looks like framing"] = ("5\r\n0\r\n\r\n\r\n0\r\n\r\n", "0\r\n\r\n"),
        ["many one-byte chunks"] = (string.Concat("abcdefghij".Select(c => $"1\r\n{c}\r\n")) + "0\r\n\r\n", "abcdefghij"),
    };

    private static readonly Dictionary<string, string> Malformed = new()
    {
        ["non-hex size"] = "g\r\nhello\r\n0\r\n\r\n",
        ["non-hex digit after hex ones"] = "5x\r\nhello\r\n0\r\n\r\n",
        ["a 0x prefix"] = "0x5\r\nhello\r\n0\r\n\r\n",
        ["empty size"] = "\r\nhello\r\n0\r\n\r\n",
        ["extension without a size"] = ";a=b\r\nhello\r\n0\r\n\r\n",
        ["a 16-digit size"] = "1000000000000000\r\n",
        ["a 16-digit size of leading zeros"] = "0000000000000005\r\nhello\r\n0\r\n\r\n",
        ["bare LF after the size"] = "5\nhello\r\n0\r\n\r\n",
        ["CR without LF after the size"] = "5\rhello\r\n0\r\n\r\n",
        ["bare LF after an extension"] = "5;a=b\nhello\r\n0\r\n\r\n",
        ["data longer than its size"] = "5\r\nhello!\r\n0\r\n\r\n",
        ["bare LF after the data"] = "5\r\nhello\n0\r\n\r\n",
        ["nothing between chunks"] = "5\r\nhello0\r\n\r\n",
        ["LF in an extension"] = "5;a=\nb\r\nhello\r\n0\r\n\r\n",
        ["an extension over 4096 bytes"] = "5;" + new string('e', 4097) + "\r\nhello\r\n0\r\n\r\n",
        ["a trailer line over 16 KiB"] = "0\r\nX: " + new string('t', 17 * 1024) + "\r\n\r\n",
        ["trailer lines over 16 KiB together"] = "0\r\n" + string.Concat(Enumerable.Repeat("X-T: 12345\r\n", 2000)) + "\r\n",
        ["a trailer line starting with LF"] = "5\r\nhello\r\n0\r\n\n",
        ["a trailer line ending in a bare LF"] = "0\r\nX: y\n\r\n",
        ["CR without LF ending the trailers"] = "0\r\n\rX",
    };

    public static TheoryData<string> ValidNames => [.. Valid.Keys];

    public static TheoryData<string> MalformedNames => [.. Malformed.Keys];

    [Theory]
    [MemberData(nameof(ValidNames))]
    public void AValidBody_DecodesWhole_AndEndsAtItsLastByte(string name)
    {
        var (encoded, body) = Vector(name);
        var result = Decode([encoded], outputSize: 64 * 1024);

        Assert.Equal(body, Encoding.Latin1.GetString(result.Body));
        Assert.True(result.Done);
        Assert.Equal(encoded.Length, result.Consumed);
    }

    [Theory]
    [MemberData(nameof(ValidNames))]
    public void AValidBody_DecodesTheSame_SplitInTwoAtEveryByte(string name)
    {
        var (encoded, body) = Vector(name);
        for (var at = 0; at <= encoded.Length; at++)
        {
            var result = Decode([encoded[..at], encoded[at..]], outputSize: 64 * 1024);

            Assert.True(body == Encoding.Latin1.GetString(result.Body), $"split at {at}");
            Assert.True(result.Done, $"split at {at}");
            Assert.Equal(encoded.Length, result.Consumed);
        }
    }

    [Theory]
    [MemberData(nameof(ValidNames))]
    public void AValidBody_DecodesTheSame_OneByteAtATime(string name)
    {
        var (encoded, body) = Vector(name);
        var result = Decode(encoded.Select(c => c.ToString()), outputSize: 64 * 1024);

        Assert.Equal(body, Encoding.Latin1.GetString(result.Body));
        Assert.True(result.Done);
        Assert.Equal(encoded.Length, result.Consumed);
    }

    [Theory]
    [MemberData(nameof(ValidNames))]
    public void AValidBody_DecodesTheSame_IntoAOneByteOutput(string name)
    {
        var (encoded, body) = Vector(name);
        var result = Decode([encoded], outputSize: 1);

        Assert.Equal(body, Encoding.Latin1.GetString(result.Body));
        Assert.True(result.Done);
        Assert.Equal(encoded.Length, result.Consumed);
    }

    [Fact]
    public void BytesAfterTheLastChunk_AreNotConsumed()
    {
        var input = "3\r\nabc\r\n0\r\nX: y\r\n\r\nHTTP/1.1 200 OK\r\n"u8;
        var decoder = new ChunkedDecoder();
        var output = new byte[64];

        var consumed = decoder.Decode(input, output, out var written);

        Assert.True(decoder.IsDone);
        Assert.Equal("3\r\nabc\r\n0\r\nX: y\r\n\r\n".Length, consumed);
        Assert.Equal("abc", Encoding.ASCII.GetString(output, 0, written));

        // Once done, the decoder takes nothing more.
        Assert.Equal(0, decoder.Decode(input[consumed..], output, out written));
        Assert.Equal(0, written);
    }

    [Fact]
    public void AnEmptyOutput_ConsumesFramingUpToTheData_AndNoData()
    {
        // What a zero-byte read relies on: the size line goes, the chunk's data stays for a real read.
        var input = "5;ext\r\nhello\r\n"u8;
        var decoder = new ChunkedDecoder();

        var consumed = decoder.Decode(input, [], out var written);

        Assert.Equal("5;ext\r\n".Length, consumed);
        Assert.Equal(0, written);
        Assert.False(decoder.IsDone);
    }

    [Fact]
    public void AnIncompleteBody_IsNotDone()
    {
        var result = Decode(["5\r\nhello\r\n0\r\n\r"], outputSize: 64);

        Assert.Equal("hello", Encoding.ASCII.GetString(result.Body));
        Assert.False(result.Done);
    }

    [Theory]
    [MemberData(nameof(MalformedNames))]
    public void MalformedFraming_IsAProtocolError_WholeOrByteByByte(string name)
    {
        var encoded = Malformed[name];

        Assert.Throws<Http11ProtocolException>(() => Decode([encoded], outputSize: 64 * 1024));
        Assert.Throws<Http11ProtocolException>(() => Decode(encoded.Select(c => c.ToString()), outputSize: 1));
    }

    private static (string Encoded, string Body) Vector(string name) => Valid[name];

    /// <summary>Feeds the parts in order as a connection would, each until taken or the body ended.</summary>
    private static (byte[] Body, bool Done, int Consumed) Decode(IEnumerable<string> parts, int outputSize)
    {
        var decoder = new ChunkedDecoder();
        var body = new List<byte>();
        var output = new byte[outputSize];
        var consumed = 0;
        foreach (var part in parts)
        {
            ReadOnlySpan<byte> input = Encoding.Latin1.GetBytes(part);
            while (!input.IsEmpty && !decoder.IsDone)
            {
                var taken = decoder.Decode(input, output, out var written);

                // A call that takes nothing and writes nothing with input and room left would loop forever.
                Assert.True(taken > 0 || written > 0, "the decoder made no progress");
                body.AddRange(output.AsSpan(0, written));
                input = input[taken..];
                consumed += taken;
            }
        }

        return (body.ToArray(), decoder.IsDone, consumed);
    }
}
