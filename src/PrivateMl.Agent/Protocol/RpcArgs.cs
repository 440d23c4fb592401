using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace PrivateMl.Agent.Protocol;

/// <summary>
/// The arguments of one pRPC call, from a JSON object body or a GET query string (dstack.md §2.1): unknown fields
/// are ignored, missing ones take proto3 defaults, <c>bytes</c> are hex with an optional <c>0x</c>. A field of the
/// wrong type or bad hex is a 400.
/// </summary>
internal sealed class RpcArgs
{
    private const int MaxDepth = 16;

    private readonly JsonElement? _json;
    private readonly IQueryCollection? _query;

    private RpcArgs(JsonElement? json, IQueryCollection? query)
    {
        _json = json;
        _query = query;
    }

    public static RpcArgs Empty { get; } = new(null, null);

    public static RpcArgs FromQuery(IQueryCollection query) => new(null, query);

    /// <summary>Parses a body: empty (or whitespace, or <c>null</c>) = all defaults; otherwise a JSON object.</summary>
    public static RpcArgs FromBody(ReadOnlyMemory<byte> body)
    {
        var span = body.Span.Trim(" \t\r\n"u8);
        if (span.IsEmpty)
        {
            return Empty;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = MaxDepth });
        }
        catch (JsonException e)
        {
            throw RpcException.BadRequest($"malformed JSON body: {e.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            return root.ValueKind switch
            {
                JsonValueKind.Object => new RpcArgs(root.Clone(), null),
                JsonValueKind.Null => Empty,
                _ => throw RpcException.BadRequest($"the request body must be a JSON object, not {root.ValueKind}"),
            };
        }
    }

    public string GetString(string name)
    {
        if (_query is not null)
        {
            return _query.TryGetValue(name, out var values) ? values.ToString() : "";
        }

        if (!TryGet(name, out var element))
        {
            return "";
        }

        return element.ValueKind == JsonValueKind.String
            ? element.GetString()!
            : throw RpcException.BadRequest($"field '{name}' must be a string");
    }

    public bool GetBool(string name)
    {
        if (_query is not null)
        {
            if (!_query.TryGetValue(name, out var values))
            {
                return false;
            }

            return values.ToString() switch
            {
                "true" or "1" => true,
                "false" or "0" or "" => false,
                _ => throw RpcException.BadRequest($"field '{name}' must be true or false"),
            };
        }

        if (!TryGet(name, out var element))
        {
            return false;
        }

        return element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw RpcException.BadRequest($"field '{name}' must be a boolean"),
        };
    }

    public ulong? GetOptionalUInt64(string name)
    {
        if (_query is not null)
        {
            if (!_query.TryGetValue(name, out var values))
            {
                return null;
            }

            return ulong.TryParse(values.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed)
                ? parsed
                : throw RpcException.BadRequest($"field '{name}' must be an unsigned integer");
        }

        if (!TryGet(name, out var element))
        {
            return null;
        }

        return element.ValueKind == JsonValueKind.Number && element.TryGetUInt64(out var value)
            ? value
            : throw RpcException.BadRequest($"field '{name}' must be an unsigned integer");
    }

    public IReadOnlyList<string> GetStringList(string name)
    {
        if (_query is not null)
        {
            return _query.TryGetValue(name, out var values) ? [.. values.Where(v => v is not null).Select(v => v!)] : [];
        }

        if (!TryGet(name, out var element))
        {
            return [];
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            throw RpcException.BadRequest($"field '{name}' must be an array of strings");
        }

        var list = new List<string>();
        foreach (var item in element.EnumerateArray())
        {
            list.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : throw RpcException.BadRequest($"field '{name}' must be an array of strings"));
        }

        return list;
    }

    /// <summary>A <c>bytes</c> field: lowercase or uppercase hex, optional <c>0x</c>; odd length or non-hex is a 400.</summary>
    public byte[] GetBytes(string name)
    {
        var text = GetString(name);
        if (text.StartsWith("0x", StringComparison.Ordinal) || text.StartsWith("0X", StringComparison.Ordinal))
        {
            text = text[2..];
        }

        if (text.Length % 2 != 0)
        {
            throw RpcException.BadRequest($"field '{name}' is not valid hex: odd number of digits");
        }

        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException)
        {
            throw RpcException.BadRequest($"field '{name}' is not valid hex");
        }
    }

    private bool TryGet(string name, out JsonElement element)
    {
        element = default;
        if (_json is not { } json || !json.TryGetProperty(name, out element) || element.ValueKind == JsonValueKind.Null)
        {
            return false;
        }

        return true;
    }
}
