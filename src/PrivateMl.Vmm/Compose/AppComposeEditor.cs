using System.Text;
using System.Text.Json;

namespace PrivateMl.Vmm.Compose;

/// <summary>
/// Edits a deployed app-compose.json the way vmm-cli.py does (<c>json.loads</c>, change a key, <c>json.dumps(indent=4,
/// ensure_ascii=False)</c>): keys keep their order, a new key goes last, and the result is byte-identical to what the
/// Python script would send, so compose hashes agree. Non-integer numbers are refused rather than re-printed differently
/// from Python's float repr.
/// </summary>
public sealed class AppComposeEditor
{
    private readonly List<KeyValuePair<string, object?>> fields;

    private AppComposeEditor(List<KeyValuePair<string, object?>> fields) => this.fields = fields;

    public static AppComposeEditor Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (Encoding.UTF8.GetByteCount(json) > AppCompose.MaxBytes)
        {
            throw new VmmException(VmmErrorCode.InvalidCompose, "the app compose is too large");
        }

        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 32 });
            return doc.RootElement.ValueKind == JsonValueKind.Object
                ? new AppComposeEditor((List<KeyValuePair<string, object?>>)Convert(doc.RootElement)!)
                : throw new VmmException(VmmErrorCode.InvalidCompose, "the app compose is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new VmmException(VmmErrorCode.InvalidCompose, $"the app compose is not JSON: {e.Message}");
        }
    }

    public object? Get(string key) => fields.FirstOrDefault(f => f.Key == key).Value;

    /// <summary>Python's <c>d[key] = value</c>: replaced in place, or appended.</summary>
    public void Set(string key, object? value)
    {
        var at = fields.FindIndex(f => f.Key == key);
        if (at >= 0)
        {
            fields[at] = new(key, value);
        }
        else
        {
            fields.Add(new(key, value));
        }
    }

    public bool Remove(string key) => fields.RemoveAll(f => f.Key == key) > 0;

    public string ToJson() => PythonJson.Dumps(fields);

    /// <summary>
    /// vmm-cli's swap rule (<c>compose --swap</c>, <c>update --swap</c>): a positive size in MB becomes <c>swap_size</c> in
    /// bytes; zero removes the key.
    /// </summary>
    public void SetSwapMegabytes(long megabytes)
    {
        if (megabytes > 0)
        {
            Set("swap_size", megabytes * 1024 * 1024);
        }
        else
        {
            Remove("swap_size");
        }
    }

    private static object? Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().Select(p => new KeyValuePair<string, object?>(p.Name, Convert(p.Value))).ToList(),
        JsonValueKind.Array => e.EnumerateArray().Select(Convert).ToList(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null => null,
        JsonValueKind.Number when e.TryGetInt64(out var n) && !e.GetRawText().Contains('.', StringComparison.Ordinal) && !e.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase) => n,
        _ => throw new VmmException(VmmErrorCode.InvalidCompose, $"the app compose holds {e.GetRawText()}, which this editor would not print as Python does; edit it by hand"),
    };
}
