using System.Buffers.Binary;
using System.Text;

namespace PrivateMl.Inference.Models;

/// <summary>A GGUF file whose bytes break the format; <see cref="Offset"/> is where the reader stopped.</summary>
public sealed class GgufFormatException(string message, long offset) : Exception($"{message} (at byte {offset})")
{
    public long Offset { get; } = offset;
}

/// <summary>The header of a GGUF file: version, metadata in file order, tensor infos and where tensor data begins.</summary>
public sealed record GgufFile(uint Version, IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata, IReadOnlyList<GgufTensorInfo> Tensors, long DataOffset, uint Alignment)
{
    public GgufValue? Find(string key) => Metadata.FirstOrDefault(kv => kv.Key == key).Value;

    public string? GetString(string key) => Find(key)?.Value as string;

    public uint? GetUInt32(string key) => Find(key)?.Value is uint v ? v : null;
}

/// <summary>
/// Reads the header of a GGUF v2/v3 file (metadata and tensor infos, not tensor data) from a seekable stream. Every
/// length is checked against the bytes that remain before anything is allocated; any violation is a
/// <see cref="GgufFormatException"/>. Used for model metadata (name, chat template, context length) and by tests.
/// </summary>
public static class GgufReader
{
    public const int MaxKeyBytes = 65_536;
    public const ulong MaxCount = 16_000_000;
    public const int MaxDimensions = 4;

    public static GgufFile Read(string path)
    {
        using var stream = File.OpenRead(path);
        return Read(stream);
    }

    public static GgufFile Read(ReadOnlyMemory<byte> bytes)
    {
        using var stream = new MemoryStream(bytes.ToArray(), writable: false);
        return Read(stream);
    }

    public static GgufFile Read(Stream stream)
    {
        if (!stream.CanSeek)
        {
            throw new ArgumentException("the GGUF reader needs a seekable stream", nameof(stream));
        }

        var r = new Input(stream);
        if (r.U32() != GgufWriter.Magic)
        {
            throw r.Error("not a GGUF file (bad magic)");
        }

        var version = r.U32();
        if (version is not (2 or 3))
        {
            throw r.Error($"unsupported GGUF version {version}");
        }

        var tensorCount = r.Count(minBytesEach: 8 + 4 + 8 + 4 + 8);
        var kvCount = r.Count(minBytesEach: 8 + 4);
        var metadata = new List<KeyValuePair<string, GgufValue>>((int)kvCount);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            var key = r.String(MaxKeyBytes);
            if (!keys.Add(key))
            {
                throw r.Error($"duplicate metadata key '{key}'");
            }

            var type = (GgufValueType)r.U32();
            metadata.Add(new(key, new GgufValue(type, ReadValue(r, type, allowArray: true))));
        }

        var alignment = 32u;
        if (metadata.FirstOrDefault(kv => kv.Key == "general.alignment").Value is { Value: uint a })
        {
            if (a == 0 || (a & (a - 1)) != 0)
            {
                throw r.Error($"general.alignment {a} is not a power of two");
            }

            alignment = a;
        }

        var tensors = new List<GgufTensorInfo>((int)tensorCount);
        for (ulong i = 0; i < tensorCount; i++)
        {
            var name = r.String(MaxKeyBytes);
            var nDims = r.U32();
            if (nDims is 0 or > MaxDimensions)
            {
                throw r.Error($"tensor '{name}' has {nDims} dimensions");
            }

            var dims = new ulong[nDims];
            for (var d = 0; d < nDims; d++)
            {
                dims[d] = r.U64();
                if (dims[d] == 0 || dims[d] > long.MaxValue)
                {
                    throw r.Error($"tensor '{name}' has dimension {dims[d]}");
                }
            }

            var type = r.U32();
            var offset = r.U64();
            if (offset % alignment != 0)
            {
                throw r.Error($"tensor '{name}' offset {offset} is not aligned to {alignment}");
            }

            tensors.Add(new GgufTensorInfo(name, dims, type, offset));
        }

        var dataOffset = (stream.Position + alignment - 1) / alignment * alignment;
        var dataLength = stream.Length - dataOffset;
        foreach (var t in tensors.Where(t => t.Type == (uint)GgmlType.F32))
        {
            // Only F32 sizes are known here; a tensor that cannot fit in the file is a broken file.
            var bytes = t.Dimensions.Aggregate(4.0, (acc, d) => acc * d);
            if (dataLength < 0 || (double)t.Offset + bytes > dataLength)
            {
                throw new GgufFormatException($"tensor '{t.Name}' runs past the end of the file", dataOffset);
            }
        }

        return new GgufFile(version, metadata, tensors, dataOffset, alignment);
    }

    private static object ReadValue(Input r, GgufValueType type, bool allowArray) => type switch
    {
        GgufValueType.UInt8 => r.Byte(),
        GgufValueType.Int8 => unchecked((sbyte)r.Byte()),
        GgufValueType.UInt16 => r.U16(),
        GgufValueType.Int16 => unchecked((short)r.U16()),
        GgufValueType.UInt32 => r.U32(),
        GgufValueType.Int32 => unchecked((int)r.U32()),
        GgufValueType.Float32 => BitConverter.UInt32BitsToSingle(r.U32()),
        GgufValueType.Bool => r.Byte() switch
        {
            0 => false,
            1 => true,
            var b => throw r.Error($"bool value {b}"),
        },
        GgufValueType.String => r.String(int.MaxValue),
        GgufValueType.UInt64 => r.U64(),
        GgufValueType.Int64 => unchecked((long)r.U64()),
        GgufValueType.Float64 => BitConverter.UInt64BitsToDouble(r.U64()),
        GgufValueType.Array when allowArray => ReadArray(r),
        _ => throw r.Error($"unknown or misplaced value type {(uint)type}"),
    };

    private static GgufArray ReadArray(Input r)
    {
        var elementType = (GgufValueType)r.U32();
        var minBytes = elementType switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.String or GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            _ => throw r.Error($"array element type {(uint)elementType}"),
        };
        var count = r.Count(minBytes);
        var items = new object[count];
        for (ulong i = 0; i < count; i++)
        {
            items[i] = ReadValue(r, elementType, allowArray: false);
        }

        return new GgufArray(elementType, items);
    }

    private sealed class Input(Stream stream)
    {
        private readonly byte[] scratch = new byte[8];

        private long Remaining => stream.Length - stream.Position;

        public GgufFormatException Error(string message) => new(message, stream.Position);

        public byte Byte() => Fill(1)[0];

        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Fill(2));

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Fill(4));

        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Fill(8));

        /// <summary>A count of items each at least <paramref name="minBytesEach"/> long, bounded by the bytes left.</summary>
        public ulong Count(int minBytesEach)
        {
            var n = U64();
            if (n > MaxCount || n * (ulong)minBytesEach > (ulong)Remaining)
            {
                throw Error($"count {n} exceeds what the file can hold");
            }

            return n;
        }

        public string String(int maxBytes)
        {
            var n = U64();
            if (n > (ulong)maxBytes || n > (ulong)Remaining)
            {
                throw Error($"string of {n} bytes exceeds the limit or the file");
            }

            var bytes = new byte[n];
            stream.ReadExactly(bytes);
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw Error("string is not valid UTF-8");
            }
        }

        private ReadOnlySpan<byte> Fill(int n)
        {
            if (Remaining < n)
            {
                throw Error("unexpected end of file");
            }

            stream.ReadExactly(scratch, 0, n);
            return scratch.AsSpan(0, n);
        }
    }
}
