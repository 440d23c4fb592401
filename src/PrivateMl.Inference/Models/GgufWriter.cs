using System.Buffers.Binary;
using System.Text;

namespace PrivateMl.Inference.Models;

/// <summary>
/// Writes a GGUF version 3 file (little-endian): header, metadata key-values in insertion order, tensor infos, padding to
/// <see cref="Alignment"/>, then tensor data, each tensor padded to the alignment. Only F32 tensors are written, which
/// every llama.cpp build loads. The bytes depend only on what was added, so equal inputs give equal files.
/// </summary>
public sealed class GgufWriter
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    public const uint Version = 3;
    public const int Alignment = 32;

    private readonly List<KeyValuePair<string, GgufValue>> metadata = [];
    private readonly List<(string Name, ulong[] Dimensions, float[] Data)> tensors = [];

    public void Add(string key, GgufValue value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        if (metadata.Any(kv => kv.Key == key))
        {
            throw new ArgumentException($"metadata key '{key}' added twice", nameof(key));
        }

        metadata.Add(new(key, value));
    }

    /// <summary>Adds an F32 tensor; <paramref name="dimensions"/> are in ggml <c>ne</c> order (fastest-varying first).</summary>
    public void AddTensor(string name, ulong[] dimensions, float[] data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var count = dimensions.Aggregate(1UL, (a, d) => a * d);
        if (count != (ulong)data.Length)
        {
            throw new ArgumentException($"tensor '{name}' has {data.Length} values for {count} elements", nameof(data));
        }

        tensors.Add((name, dimensions, data));
    }

    public byte[] ToArray()
    {
        using var stream = new MemoryStream();
        WriteTo(stream);
        return stream.ToArray();
    }

    public void WriteTo(Stream stream)
    {
        var w = new Output(stream);
        w.U32(Magic);
        w.U32(Version);
        w.U64((ulong)tensors.Count);
        w.U64((ulong)metadata.Count);
        foreach (var (key, value) in metadata)
        {
            w.String(key);
            w.U32((uint)value.Type);
            WriteValue(w, value.Type, value.Value);
        }

        ulong offset = 0;
        foreach (var (name, dims, data) in tensors)
        {
            w.String(name);
            w.U32((uint)dims.Length);
            foreach (var d in dims)
            {
                w.U64(d);
            }

            w.U32((uint)GgmlType.F32);
            w.U64(offset);
            offset += Align((ulong)data.Length * sizeof(float)); // each tensor starts where the previous padded one ended
        }

        w.Pad(Alignment);
        foreach (var (_, _, data) in tensors)
        {
            var buffer = new byte[data.Length * sizeof(float)];
            for (var i = 0; i < data.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(buffer.AsSpan(i * sizeof(float)), data[i]);
            }

            w.Bytes(buffer);
            w.Pad(Alignment);
        }
    }

    private static ulong Align(ulong n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void WriteValue(Output w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Bytes([(byte)value]); break;
            case GgufValueType.Int8: w.Bytes([unchecked((byte)(sbyte)value)]); break;
            case GgufValueType.UInt16: w.U16((ushort)value); break;
            case GgufValueType.Int16: w.U16(unchecked((ushort)(short)value)); break;
            case GgufValueType.UInt32: w.U32((uint)value); break;
            case GgufValueType.Int32: w.U32(unchecked((uint)(int)value)); break;
            case GgufValueType.Float32: w.U32(BitConverter.SingleToUInt32Bits((float)value)); break;
            case GgufValueType.Bool: w.Bytes([(bool)value ? (byte)1 : (byte)0]); break;
            case GgufValueType.String: w.String((string)value); break;
            case GgufValueType.UInt64: w.U64((ulong)value); break;
            case GgufValueType.Int64: w.U64(unchecked((ulong)(long)value)); break;
            case GgufValueType.Float64: w.U64(BitConverter.DoubleToUInt64Bits((double)value)); break;
            case GgufValueType.Array:
                var array = (GgufArray)value;
                if (array.ElementType == GgufValueType.Array)
                {
                    throw new ArgumentException("nested GGUF arrays are not supported", nameof(value));
                }

                w.U32((uint)array.ElementType);
                w.U64((ulong)array.Items.Count);
                foreach (var item in array.Items)
                {
                    WriteValue(w, array.ElementType, item);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown GGUF value type");
        }
    }

    private sealed class Output(Stream stream)
    {
        private long written;

        public void Bytes(ReadOnlySpan<byte> bytes)
        {
            stream.Write(bytes);
            written += bytes.Length;
        }

        public void U16(ushort v)
        {
            Span<byte> b = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(b, v);
            Bytes(b);
        }

        public void U32(uint v)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, v);
            Bytes(b);
        }

        public void U64(ulong v)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(b, v);
            Bytes(b);
        }

        public void String(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            U64((ulong)bytes.Length);
            Bytes(bytes);
        }

        public void Pad(int alignment)
        {
            var pad = (int)((alignment - (written % alignment)) % alignment);
            Bytes(new byte[pad]);
        }
    }
}
