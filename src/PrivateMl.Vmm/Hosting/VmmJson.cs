using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Vmm.Hosting;

/// <summary>JSON settings shared by the service and its client: proto names come from attributes; numbers may arrive as strings (proto3 JSON).</summary>
public static class VmmJson
{
    public static JsonSerializerOptions Options { get; } = new()
    {
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        MaxDepth = 32,
    };

    /// <summary>dstack's error body, pretty-printed <c>{"error": "…"}</c>.</summary>
    public static byte[] Error(string message) =>
        JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["error"] = message }, IndentedOptions);

    private static JsonSerializerOptions IndentedOptions { get; } = new() { WriteIndented = true, IndentSize = 2 };
}
