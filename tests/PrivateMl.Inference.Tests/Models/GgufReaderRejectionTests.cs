using System.Buffers.Binary;
using PrivateMl.Inference.Models;

namespace PrivateMl.Inference.Tests.Models;

public sealed class GgufReaderRejectionTests
{
    private static readonly byte[] Demo = DemoModelWriter.Create();

    [Fact]
    public void Rejects_BadMagic()
    {
        var bytes = (byte[])Demo.Clone();
        bytes[0] ^= 1;
        Assert.Throws<GgufFormatException>(() => GgufReader.Read(bytes));
    }

    [Fact]
    public void Rejects_UnsupportedVersion()
    {
        var bytes = (byte[])Demo.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 99);
        Assert.Throws<GgufFormatException>(() => GgufReader.Read(bytes));
    }

    [Theory]
    [InlineData(8)] // tensor count
    [InlineData(16)] // key-value count
    [InlineData(24)] // first key's length
    public void Rejects_HugeCountsOrLengths_BeforeAllocating(int offset)
    {
        var bytes = (byte[])Demo.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offset), ulong.MaxValue / 2);
        var e = Assert.Throws<GgufFormatException>(() => GgufReader.Read(bytes));
        Assert.Equal(offset + 8, e.Offset);
    }

    [Fact]
    public void Rejects_EveryTruncation_WithATypedError()
    {
        var header = GgufReader.Read(Demo);
        for (var length = 0; length < header.DataOffset; length += 97)
        {
            Assert.Throws<GgufFormatException>(() => GgufReader.Read(Demo.AsMemory(0, length)));
        }

        // Cutting tensor data is also caught: the last tensor would run past the end.
        Assert.Throws<GgufFormatException>(() => GgufReader.Read(Demo.AsMemory(0, Demo.Length - 4)));
    }

    [Fact]
    public void Rejects_RandomByteFlips_OnlyWithTypedErrors()
    {
        var header = GgufReader.Read(Demo);
        var rng = new SplitMix64(1);
        for (var i = 0; i < 300; i++)
        {
            var bytes = (byte[])Demo.Clone();
            var at = (int)(rng.Next() % (ulong)header.DataOffset);
            bytes[at] ^= (byte)(1 + (rng.Next() % 255));
            try
            {
                GgufReader.Read(bytes);
            }
            catch (GgufFormatException)
            {
            }
        }
    }
}
