using System.Text;

namespace PrivateMl.Attestation.EventLog;

/// <summary>
/// JSON string escaping as serde_json writes it and as RFC 8785 (JCS) requires: only <c>"</c>, <c>\</c> and control
/// characters are escaped (<c>\b \f \n \r \t</c>, otherwise <c>\u00xx</c> in lower case); everything else is literal.
/// </summary>
public static class JsonText
{
    public static void AppendString(StringBuilder builder, string value)
    {
        builder.Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\b': builder.Append("\\b"); break;
                case '\f': builder.Append("\\f"); break;
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                default:
                    if (c < 0x20)
                    {
                        builder.Append("\\u00").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        builder.Append(c);
                    }

                    break;
            }
        }

        builder.Append('"');
    }
}
