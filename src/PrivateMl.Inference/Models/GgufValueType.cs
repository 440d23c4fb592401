namespace PrivateMl.Inference.Models;

/// <summary>Metadata value types of the GGUF format (ggml docs/gguf.md), with their wire numbers.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// One metadata value. <see cref="Value"/> holds the CLR value for the type (byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double); for arrays it is a <see cref="GgufArray"/>.
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value)
{
    public static GgufValue Of(string value) => new(GgufValueType.String, value);

    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);

    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);

    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);

    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);

    public static GgufValue Of(ulong value) => new(GgufValueType.UInt64, value);

    public static GgufValue Strings(IReadOnlyList<string> values) => new(GgufValueType.Array, new GgufArray(GgufValueType.String, values.Cast<object>().ToArray()));

    public static GgufValue Floats(IReadOnlyList<float> values) => new(GgufValueType.Array, new GgufArray(GgufValueType.Float32, values.Cast<object>().ToArray()));

    public static GgufValue Ints(IReadOnlyList<int> values) => new(GgufValueType.Array, new GgufArray(GgufValueType.Int32, values.Cast<object>().ToArray()));

    public override string ToString() => Value is GgufArray array ? $"{array.ElementType}[{array.Items.Count}]" : $"{Type}:{Value}";
}

/// <summary>A typed GGUF array (nested arrays are not used by llama models and are rejected by the reader).</summary>
public sealed record GgufArray(GgufValueType ElementType, IReadOnlyList<object> Items);

/// <summary>Tensor element types this project writes; GGUF defines many more (quantized ones), which the reader reports by number.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
}

/// <summary>A tensor's description in the GGUF header: dimensions in ggml <c>ne</c> order (fastest-varying first).</summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<ulong> Dimensions, uint Type, ulong Offset)
{
    public ulong ElementCount => Dimensions.Aggregate(1UL, (a, d) => a * d);
}
