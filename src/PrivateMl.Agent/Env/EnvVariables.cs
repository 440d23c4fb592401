using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Env;

/// <summary>One environment variable. The value is a secret: <see cref="ToString"/> shows the name only.</summary>
public sealed class EnvVariable(string key, string value)
{
    public string Key { get; } = key ?? throw new ArgumentNullException(nameof(key));

    public string Value { get; } = value ?? throw new ArgumentNullException(nameof(value));

    public override string ToString() => $"EnvVariable({Key})";
}

/// <summary>What survived <see cref="EnvVariables.Parse"/>: the variables (sorted by name, last duplicate wins) and the names dropped by <c>allowed_envs</c>.</summary>
public sealed class EnvParseResult(IReadOnlyList<EnvVariable> variables, IReadOnlyList<string> dropped)
{
    public IReadOnlyList<EnvVariable> Variables { get; } = variables;

    /// <summary>Names not listed in <c>allowed_envs</c> (dropped with a warning, as dstack does).</summary>
    public IReadOnlyList<string> Dropped { get; } = dropped;
}

/// <summary>
/// The plaintext inside an encrypted env (dstack.md §7.2, §7.3): <c>{"env":[{"key":"K","value":"V"},…]}</c>, the
/// rules <c>dstack-util</c> applies when it opens it (at most 1024 items, names <c>[A-Za-z_][A-Za-z0-9_]*</c> of at
/// most 255 bytes, values of at most 128 KiB, 1 MiB in all, only names in <c>allowed_envs</c>), and the two files
/// it writes for the app (<c>.decrypted-env</c>, <c>.decrypted-env.json</c>).
/// </summary>
public static class EnvVariables
{
    public const int MaxItems = 1024;
    public const int MaxKeyBytes = 255;
    public const int MaxValueBytes = 128 * 1024;
    public const int MaxTotalBytes = 1024 * 1024;

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly SearchValues<char> NeedsQuoting = SearchValues.Create(" \t|&;<>()$`\\\"'\n");

    /// <summary>The plaintext JSON, compact (as the npm SDK writes it).</summary>
    public static byte[] Serialize(IEnumerable<EnvVariable> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("env");
            foreach (var variable in variables)
            {
                writer.WriteStartObject();
                writer.WriteString("key", variable.Key);
                writer.WriteString("value", variable.Value);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Parses decrypted plaintext with dstack's rules. <paramref name="allowedEnvs"/> is the compose file's
    /// <c>allowed_envs</c> (absent = empty = nothing allowed, as in dstack). Malformed JSON, too many items, a bad
    /// allowed name or an over-long value is an <see cref="AttestationException"/> with
    /// <see cref="ErrorCode.EnvPayloadInvalid"/>.
    /// </summary>
    public static EnvParseResult Parse(ReadOnlySpan<byte> plaintext, IReadOnlyCollection<string> allowedEnvs)
    {
        ArgumentNullException.ThrowIfNull(allowedEnvs);
        var allowed = allowedEnvs as ISet<string> ?? new HashSet<string>(allowedEnvs, StringComparer.Ordinal);
        var items = ReadItems(plaintext);
        var kept = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var dropped = new List<string>();
        long total = 0;
        foreach (var (key, value) in items)
        {
            if (!allowed.Contains(key))
            {
                dropped.Add(key);
                continue;
            }

            CheckName(key);
            var valueBytes = Encoding.UTF8.GetByteCount(value);
            if (valueBytes > MaxValueBytes)
            {
                throw Invalid($"the value of {key} is {valueBytes} bytes; at most {MaxValueBytes} are allowed");
            }

            total += Encoding.UTF8.GetByteCount(key) + valueBytes;
            if (total > MaxTotalBytes)
            {
                throw Invalid($"the variables exceed {MaxTotalBytes} bytes in all");
            }

            kept[key] = value;
        }

        return new EnvParseResult([.. kept.Select(pair => new EnvVariable(pair.Key, pair.Value))], dropped);
    }

    /// <summary>
    /// <c>.decrypted-env</c>: <c>KEY=VALUE</c> lines in the given order; a value holding a space, tab, newline or any
    /// of <c>|&amp;;&lt;&gt;()$`\"'</c> is double-quoted with newline, <c>"</c>, <c>$</c> and <c>`</c> escaped (backslash is
    /// not, as in dstack).
    /// </summary>
    public static string RenderDotEnv(IEnumerable<EnvVariable> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var text = new StringBuilder();
        foreach (var variable in variables)
        {
            text.Append(variable.Key).Append('=');
            if (variable.Value.AsSpan().ContainsAny(NeedsQuoting))
            {
                text.Append('"')
                    .Append(variable.Value.Replace("\n", "\\n", StringComparison.Ordinal)
                        .Replace("\"", "\\\"", StringComparison.Ordinal)
                        .Replace("$", "\\$", StringComparison.Ordinal)
                        .Replace("`", "\\`", StringComparison.Ordinal))
                    .Append('"');
            }
            else
            {
                text.Append(variable.Value);
            }

            text.Append('\n');
        }

        return text.ToString();
    }

    /// <summary><c>.decrypted-env.json</c>: one JSON object, names to values.</summary>
    public static byte[] RenderJson(IEnumerable<EnvVariable> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            foreach (var variable in variables)
            {
                writer.WriteString(variable.Key, variable.Value);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>True for a name dstack accepts: <c>[A-Za-z_][A-Za-z0-9_]*</c>, 1–255 bytes.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= MaxKeyBytes
        && (char.IsAsciiLetter(name[0]) || name[0] == '_')
        && name.AsSpan().IndexOfAnyExcept(NameChars) < 0;

    private static readonly SearchValues<char> NameChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");

    private static void CheckName(string key)
    {
        if (!IsValidName(key))
        {
            throw Invalid($"'{Printable(key)}' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*, at most {MaxKeyBytes} bytes)");
        }
    }

    private static List<(string Key, string Value)> ReadItems(ReadOnlySpan<byte> plaintext)
    {
        var reader = new Utf8JsonReader(plaintext, new JsonReaderOptions { MaxDepth = 8 });
        var items = new List<(string, string)>();
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid("the decrypted env is not a JSON object {\"env\":[…]}");
            }

            var sawEnv = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isEnv = reader.ValueTextEquals("env"u8);
                reader.Read();
                if (!isEnv)
                {
                    reader.Skip();
                    continue;
                }

                if (sawEnv)
                {
                    throw Invalid("the decrypted env has two \"env\" fields");
                }

                sawEnv = true;
                if (reader.TokenType != JsonTokenType.StartArray)
                {
                    throw Invalid("\"env\" is not an array");
                }

                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (items.Count == MaxItems)
                    {
                        throw Invalid($"the decrypted env has more than {MaxItems} items");
                    }

                    items.Add(ReadItem(ref reader));
                }
            }

            if (!sawEnv)
            {
                throw Invalid("the decrypted env has no \"env\" array");
            }

            if (reader.Read())
            {
                throw Invalid("trailing data after the decrypted env JSON");
            }
        }
        catch (JsonException e)
        {
            throw new AttestationException(ErrorCode.EnvPayloadInvalid, $"the decrypted env is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            throw new AttestationException(ErrorCode.EnvPayloadInvalid, $"the decrypted env has a field of the wrong type: {e.Message}", e);
        }

        return items;
    }

    private static (string, string) ReadItem(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid("an \"env\" item is not an object {\"key\":…,\"value\":…}");
        }

        string? key = null;
        string? value = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isKey = reader.ValueTextEquals("key"u8);
            var isValue = reader.ValueTextEquals("value"u8);
            reader.Read();
            if (isKey || isValue)
            {
                if (reader.TokenType != JsonTokenType.String)
                {
                    throw Invalid($"\"{(isKey ? "key" : "value")}\" of an env item is not a string");
                }

                if (isKey)
                {
                    key = reader.GetString();
                }
                else
                {
                    value = reader.GetString();
                }
            }
            else
            {
                reader.Skip();
            }
        }

        if (key is null || value is null)
        {
            throw Invalid("an \"env\" item lacks \"key\" or \"value\"");
        }

        return (key, value);
    }

    private static string Printable(string key) =>
        key.Length > 64 ? string.Concat(key.AsSpan(0, 64), "…") : key;

    private static AttestationException Invalid(string message) => new(ErrorCode.EnvPayloadInvalid, message);
}
