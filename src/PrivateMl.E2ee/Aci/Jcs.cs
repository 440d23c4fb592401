using System.Globalization;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// RFC 8785 (JCS) canonical JSON for the subset ACI uses: objects (members sorted by UTF-16 code units), arrays,
/// strings, integers, booleans and null. Strings escape only <c>"</c>, <c>\</c> and control characters (short forms
/// where RFC 8785 has them, else <c>\u00xx</c> lower-case); every other character is written as UTF-8. Non-integer
/// numbers are refused (ACI documents hold none), so no float formatting is involved.
/// </summary>
public static class Jcs
{
    /// <summary>Deepest nesting accepted when canonicalising parsed input.</summary>
    public const int MaxDepth = 32;

    /// <summary>Canonical bytes of a parsed JSON value.</summary>
    /// <exception cref="AttestationException">a non-integer number, or nesting deeper than <see cref="MaxDepth"/>.</exception>
    public static byte[] Canonicalize(JsonElement element)
    {
        var builder = new StringBuilder();
        Write(builder, element, 0);
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    /// <summary>Appends a JSON string literal in canonical form.</summary>
    public static void AppendString(StringBuilder builder, string value)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(value);
        JsonText.AppendString(builder, value);
    }

    private static void Write(StringBuilder builder, JsonElement element, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new AttestationException(ErrorCode.ReportMalformed, "the JSON document nests deeper than allowed");
        }

        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                builder.Append('{');
                var first = true;
                var members = element.EnumerateObject().ToList();
                var names = new HashSet<string>(StringComparer.Ordinal);
                foreach (var member in members)
                {
                    if (!names.Add(member.Name))
                    {
                        throw new AttestationException(ErrorCode.ReportMalformed, $"the JSON object repeats the member '{member.Name}'");
                    }
                }

                foreach (var member in members.OrderBy(m => m.Name, StringComparer.Ordinal))
                {
                    if (!first)
                    {
                        builder.Append(',');
                    }

                    first = false;
                    AppendString(builder, member.Name);
                    builder.Append(':');
                    Write(builder, member.Value, depth + 1);
                }

                builder.Append('}');
                break;
            case JsonValueKind.Array:
                builder.Append('[');
                var firstItem = true;
                foreach (var item in element.EnumerateArray())
                {
                    if (!firstItem)
                    {
                        builder.Append(',');
                    }

                    firstItem = false;
                    Write(builder, item, depth + 1);
                }

                builder.Append(']');
                break;
            case JsonValueKind.String:
                AppendString(builder, element.GetString()!);
                break;
            case JsonValueKind.Number:
                if (!element.TryGetInt64(out var number) || Math.Abs(number) > (1L << 53))
                {
                    throw new AttestationException(ErrorCode.ReportMalformed, "ACI documents hold integers (|n| ≤ 2^53) only");
                }

                builder.Append(number.ToString(CultureInfo.InvariantCulture));
                break;
            case JsonValueKind.True:
                builder.Append("true");
                break;
            case JsonValueKind.False:
                builder.Append("false");
                break;
            default:
                builder.Append("null");
                break;
        }
    }
}
