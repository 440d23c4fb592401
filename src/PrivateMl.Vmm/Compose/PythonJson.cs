using System.Globalization;
using System.Text;

namespace PrivateMl.Vmm.Compose;

/// <summary>
/// Writes what Python's <c>json.dumps(obj, indent=4, ensure_ascii=False)</c> writes (the form vmm-cli.py and dstack.py
/// emit app-compose.json in, dstack.md §8.2): keys in insertion order, <c>", "</c>-free item separators with newlines,
/// <c>": "</c> after keys, non-ASCII verbatim, only <c>"</c>, <c>\</c> and control characters escaped. The compose hash
/// is SHA-256 of these exact bytes, so every character matters.
/// </summary>
internal static class PythonJson
{
    private const string Indent = "    ";

    /// <summary>
    /// Serialises an object whose values are <see cref="string"/>, <see cref="bool"/>, <see cref="long"/>/<see cref="int"/>,
    /// <see cref="IReadOnlyList{T}"/> of string, or nested <see cref="IReadOnlyList{T}"/> of key/value pairs.
    /// </summary>
    public static string Dumps(IReadOnlyList<KeyValuePair<string, object?>> obj)
    {
        var builder = new StringBuilder();
        WriteValue(builder, obj, 0);
        return builder.ToString();
    }

    private static void WriteValue(StringBuilder b, object? value, int level)
    {
        switch (value)
        {
            case null:
                b.Append("null");
                break;
            case string s:
                WriteString(b, s);
                break;
            case bool flag:
                b.Append(flag ? "true" : "false");
                break;
            case int i:
                b.Append(i.ToString(CultureInfo.InvariantCulture));
                break;
            case long l:
                b.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case IReadOnlyList<KeyValuePair<string, object?>> obj:
                if (obj.Count == 0)
                {
                    b.Append("{}");
                    break;
                }

                b.Append('{');
                for (var k = 0; k < obj.Count; k++)
                {
                    b.Append(k == 0 ? "\n" : ",\n");
                    AppendIndent(b, level + 1);
                    WriteString(b, obj[k].Key);
                    b.Append(": ");
                    WriteValue(b, obj[k].Value, level + 1);
                }

                b.Append('\n');
                AppendIndent(b, level);
                b.Append('}');
                break;
            case IReadOnlyList<object?> items:
                if (items.Count == 0)
                {
                    b.Append("[]");
                    break;
                }

                b.Append('[');
                for (var k = 0; k < items.Count; k++)
                {
                    b.Append(k == 0 ? "\n" : ",\n");
                    AppendIndent(b, level + 1);
                    WriteValue(b, items[k], level + 1);
                }

                b.Append('\n');
                AppendIndent(b, level);
                b.Append(']');
                break;
            default:
                throw new ArgumentException($"unsupported value type {value.GetType().Name}", nameof(value));
        }
    }

    private static void AppendIndent(StringBuilder b, int level)
    {
        for (var k = 0; k < level; k++)
        {
            b.Append(Indent);
        }
    }

    /// <summary>Python's <c>py_encode_basestring</c> (ensure_ascii=False).</summary>
    internal static void WriteString(StringBuilder b, string s)
    {
        b.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                case '\b': b.Append("\\b"); break;
                case '\f': b.Append("\\f"); break;
                default:
                    if (c < 0x20)
                    {
                        b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        b.Append(c);
                    }

                    break;
            }
        }

        b.Append('"');
    }
}
