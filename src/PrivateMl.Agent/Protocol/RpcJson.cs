using System.Buffers;
using System.Text.Json;

namespace PrivateMl.Agent.Protocol;

/// <summary>Serialises responses to bytes first (so every response has a Content-Length, dstack.md §1 item 4).</summary>
internal static class RpcJson
{
    private static readonly JsonWriterOptions Compact = new() { Indented = false };
    private static readonly JsonWriterOptions Pretty = new() { Indented = true, IndentSize = 2, NewLine = "\n" };

    /// <summary>The JSON literal <c>null</c> (a <c>google.protobuf.Empty</c> response).</summary>
    public static byte[] Null { get; } = "null"u8.ToArray();

    public static byte[] Write(Action<Utf8JsonWriter> write, bool indented = false)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, indented ? Pretty : Compact))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>dstack's error body: pretty-printed <c>{"error": "…"}</c>.</summary>
    public static byte[] Error(string message) => Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("error", message);
        w.WriteEndObject();
    }, indented: true);

    public static void WriteHex(this Utf8JsonWriter writer, string name, ReadOnlySpan<byte> value) =>
        writer.WriteString(name, Convert.ToHexStringLower(value));

    public static void WriteHexArray(this Utf8JsonWriter writer, string name, IEnumerable<byte[]> values)
    {
        writer.WriteStartArray(name);
        foreach (var value in values)
        {
            writer.WriteStringValue(Convert.ToHexStringLower(value));
        }

        writer.WriteEndArray();
    }
}
