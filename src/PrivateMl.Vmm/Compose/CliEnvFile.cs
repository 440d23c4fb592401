namespace PrivateMl.Vmm.Compose;

/// <summary>
/// vmm-cli.py's env file (dstack.md §7.3): <c>KEY=VALUE</c> per line, <c>#</c> comments and blank lines skipped, lines
/// without <c>=</c> skipped, split at the first <c>=</c>, both sides stripped, no quote handling; a repeated key keeps
/// its first position and takes the last value (a Python dict).
/// </summary>
public static class CliEnvFile
{
    /// <summary>dstack-util's cap on keys + values (1 MiB); a file is read up to twice that.</summary>
    public const int MaxBytes = 2 * 1024 * 1024;

    public const int MaxItems = 1024;

    public static IReadOnlyList<KeyValuePair<string, string>> Read(string path) =>
        Parse(AppComposeBuilder.ReadUtf8File(path, MaxBytes));

    public static IReadOnlyList<KeyValuePair<string, string>> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var order = new List<string>();
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        // Python's universal newlines: \r\n, \r and \n all end a line.
        foreach (var raw in text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n', '\r'))
        {
            var line = PyStrip(raw);
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0)
            {
                continue;
            }

            var key = PyStrip(line[..eq]);
            var value = PyStrip(line[(eq + 1)..]);
            if (!values.ContainsKey(key))
            {
                order.Add(key);
                if (order.Count > MaxItems)
                {
                    throw VmmException.Invalid($"the env file has more than {MaxItems} variables");
                }
            }

            values[key] = value;
        }

        return order.Select(k => new KeyValuePair<string, string>(k, values[k])).ToList();
    }

    /// <summary>Python's <c>str.strip()</c>: Unicode whitespace plus the separators U+001C..U+001F.</summary>
    internal static string PyStrip(string s)
    {
        var start = 0;
        var end = s.Length;
        while (start < end && IsPySpace(s[start]))
        {
            start++;
        }

        while (end > start && IsPySpace(s[end - 1]))
        {
            end--;
        }

        return s[start..end];
    }

    private static bool IsPySpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';
}
