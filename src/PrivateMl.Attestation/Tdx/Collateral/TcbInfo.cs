using System.Globalization;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx.Collateral;

/// <summary>One TCB level of a TCB Info (platform level) after parsing.</summary>
internal sealed record TcbInfoLevel(
    int[] SgxComponents,
    string[] SgxComponentNames,
    int PceSvn,
    int[]? TdxComponents,
    string[]? TdxComponentNames,
    DateTimeOffset TcbDate,
    TcbStatus? Status,
    string StatusText,
    string[] AdvisoryIds);

/// <summary>An ISVSVN-keyed level (TDX module identity or QE identity).</summary>
internal sealed record IsvSvnLevel(int IsvSvn, DateTimeOffset TcbDate, TcbStatus? Status, string StatusText, string[] AdvisoryIds);

/// <summary>A TDX module identity (<c>tdxModuleIdentities[]</c>) or the default <c>tdxModule</c> (no levels).</summary>
internal sealed record TdxModuleIdentity(string Id, byte[] MrSigner, byte[] Attributes, byte[] AttributesMask, IsvSvnLevel[] Levels);

/// <summary>Intel TCB Info v3 (<c>tcbInfo</c>), parsed once from its exact signed text.</summary>
internal sealed record TcbInfo
{
    public required string Id { get; init; }

    public required int Version { get; init; }

    public required DateTimeOffset IssueDate { get; init; }

    public required DateTimeOffset NextUpdate { get; init; }

    public required byte[] Fmspc { get; init; }

    public required byte[] PceId { get; init; }

    public required int TcbType { get; init; }

    public required int TcbEvaluationDataNumber { get; init; }

    public TdxModuleIdentity? TdxModule { get; init; }

    public required TdxModuleIdentity[] TdxModuleIdentities { get; init; }

    /// <summary>Sorted highest first: SGX components, then PCESVN, then TDX components (descending, lexicographic).</summary>
    public required TcbInfoLevel[] Levels { get; init; }

    public static TcbInfo Parse(ReadOnlySpan<byte> utf8)
    {
        try
        {
            using var doc = JsonDocument.Parse(utf8.ToArray(), CollateralJson.DocumentOptions);
            var r = doc.RootElement;
            var version = CollateralJson.Int(r, "version");
            if (version != 3)
            {
                throw new AttestationException(ErrorCode.CollateralVersionUnsupported, $"TCB info version {version} is not supported (3)");
            }

            var levels = r.GetProperty("tcbLevels").EnumerateArray().Select(ParseLevel).ToArray();
            if (levels.Length == 0)
            {
                throw CollateralJson.Malformed("TCB info has no TCB levels");
            }

            levels = [.. levels.Order(Comparer<TcbInfoLevel>.Create(CompareHighestFirst))]; // stable
            return new TcbInfo
            {
                Id = CollateralJson.String(r, "id"),
                Version = version,
                IssueDate = CollateralJson.Date(r, "issueDate"),
                NextUpdate = CollateralJson.Date(r, "nextUpdate"),
                Fmspc = CollateralJson.Hex(r, "fmspc", 6),
                PceId = CollateralJson.Hex(r, "pceId", 2),
                TcbType = CollateralJson.Int(r, "tcbType"),
                TcbEvaluationDataNumber = CollateralJson.Int(r, "tcbEvaluationDataNumber"),
                TdxModule = r.TryGetProperty("tdxModule", out var m) ? ParseModule(m, "tdxModule", withLevels: false) : null,
                TdxModuleIdentities = r.TryGetProperty("tdxModuleIdentities", out var ids)
                    ? ids.EnumerateArray().Select(e => ParseModule(e, CollateralJson.String(e, "id"), withLevels: true)).ToArray()
                    : [],
                Levels = levels,
            };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw CollateralJson.Malformed("TCB info is not valid: " + ex.Message, ex);
        }
    }

    private static int CompareHighestFirst(TcbInfoLevel a, TcbInfoLevel b)
    {
        var c = CompareArrays(b.SgxComponents, a.SgxComponents);
        if (c != 0)
        {
            return c;
        }

        c = b.PceSvn.CompareTo(a.PceSvn);
        return c != 0 ? c : CompareArrays(b.TdxComponents ?? [], a.TdxComponents ?? []);
    }

    private static int CompareArrays(int[] x, int[] y)
    {
        for (var i = 0; i < Math.Min(x.Length, y.Length); i++)
        {
            if (x[i] != y[i])
            {
                return x[i].CompareTo(y[i]);
            }
        }

        return x.Length.CompareTo(y.Length);
    }

    private static TcbInfoLevel ParseLevel(JsonElement level)
    {
        var tcb = level.GetProperty("tcb");
        var (sgx, sgxNames) = Components(tcb.GetProperty("sgxtcbcomponents"), "sgxtcbcomponents");
        int[]? tdx = null;
        string[]? tdxNames = null;
        if (tcb.TryGetProperty("tdxtcbcomponents", out var t))
        {
            (tdx, tdxNames) = Components(t, "tdxtcbcomponents");
        }

        var statusText = CollateralJson.String(level, "tcbStatus");
        return new TcbInfoLevel(
            sgx,
            sgxNames,
            CollateralJson.Int(tcb, "pcesvn"),
            tdx,
            tdxNames,
            CollateralJson.Date(level, "tcbDate"),
            CollateralJson.Status(statusText),
            statusText,
            CollateralJson.Advisories(level));
    }

    private static (int[] Svns, string[] Names) Components(JsonElement array, string what)
    {
        if (array.GetArrayLength() != 16)
        {
            throw CollateralJson.Malformed($"{what} has {array.GetArrayLength()} entries; 16 are required");
        }

        var svns = new int[16];
        var names = new string[16];
        var i = 0;
        foreach (var c in array.EnumerateArray())
        {
            svns[i] = CollateralJson.Int(c, "svn");
            if (svns[i] is < 0 or > 255)
            {
                throw CollateralJson.Malformed($"{what}[{i}].svn is out of range");
            }

            names[i] = c.TryGetProperty("type", out var type) ? type.GetString() ?? string.Empty
                : c.TryGetProperty("category", out var cat) ? cat.GetString() ?? string.Empty
                : string.Empty;
            i++;
        }

        return (svns, names);
    }

    private static TdxModuleIdentity ParseModule(JsonElement e, string id, bool withLevels) => new(
        id,
        CollateralJson.Hex(e, "mrsigner", 48),
        CollateralJson.Hex(e, "attributes", 8),
        CollateralJson.Hex(e, "attributesMask", 8),
        withLevels ? CollateralJson.IsvSvnLevels(e) : []);
}

/// <summary>Intel Enclave Identity v2 (<c>enclaveIdentity</c>) for the QE.</summary>
internal sealed record QeIdentity
{
    public required string Id { get; init; }

    public required int Version { get; init; }

    public required DateTimeOffset IssueDate { get; init; }

    public required DateTimeOffset NextUpdate { get; init; }

    public required int TcbEvaluationDataNumber { get; init; }

    public required uint MiscSelect { get; init; }

    public required uint MiscSelectMask { get; init; }

    public required byte[] Attributes { get; init; }

    public required byte[] AttributesMask { get; init; }

    public required byte[] MrSigner { get; init; }

    public required int IsvProdId { get; init; }

    /// <summary>Sorted by ISVSVN, highest first.</summary>
    public required IsvSvnLevel[] Levels { get; init; }

    public static QeIdentity Parse(ReadOnlySpan<byte> utf8)
    {
        try
        {
            using var doc = JsonDocument.Parse(utf8.ToArray(), CollateralJson.DocumentOptions);
            var r = doc.RootElement;
            var version = CollateralJson.Int(r, "version");
            if (version != 2)
            {
                throw new AttestationException(ErrorCode.CollateralVersionUnsupported, $"QE identity version {version} is not supported (2)");
            }

            return new QeIdentity
            {
                Id = CollateralJson.String(r, "id"),
                Version = version,
                IssueDate = CollateralJson.Date(r, "issueDate"),
                NextUpdate = CollateralJson.Date(r, "nextUpdate"),
                TcbEvaluationDataNumber = CollateralJson.Int(r, "tcbEvaluationDataNumber"),
                MiscSelect = uint.Parse(CollateralJson.HexText(r, "miscselect", 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                MiscSelectMask = uint.Parse(CollateralJson.HexText(r, "miscselectMask", 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                Attributes = CollateralJson.Hex(r, "attributes", 16),
                AttributesMask = CollateralJson.Hex(r, "attributesMask", 16),
                MrSigner = CollateralJson.Hex(r, "mrsigner", 32),
                IsvProdId = CollateralJson.Int(r, "isvprodid"),
                Levels = CollateralJson.IsvSvnLevels(r),
            };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException or OverflowException)
        {
            throw CollateralJson.Malformed("QE identity is not valid: " + ex.Message, ex);
        }
    }
}

/// <summary>Strict readers for Intel's collateral JSON.</summary>
internal static class CollateralJson
{
    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 16 };

    public static AttestationException Malformed(string message, Exception? inner = null) =>
        inner is AttestationException ae ? ae : inner is null
            ? new AttestationException(ErrorCode.CollateralMalformed, message)
            : new AttestationException(ErrorCode.CollateralMalformed, message, inner);

    public static string String(JsonElement e, string name) =>
        e.GetProperty(name).GetString() ?? throw Malformed($"\"{name}\" is not a string");

    public static int Int(JsonElement e, string name) => e.GetProperty(name).GetInt32();

    public static DateTimeOffset Date(JsonElement e, string name)
    {
        var text = String(e, name);
        if (!DateTimeOffset.TryParseExact(
                text,
                ["yyyy-MM-dd'T'HH:mm:ss'Z'", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'"],
                CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal,
                out var value))
        {
            throw Malformed($"\"{name}\" is not a UTC time (yyyy-MM-ddTHH:mm:ssZ): {text}");
        }

        return value;
    }

    public static string HexText(JsonElement e, string name, int bytes)
    {
        var text = String(e, name);
        if (text.Length != bytes * 2)
        {
            throw Malformed($"\"{name}\" must be {bytes * 2} hex digits");
        }

        return text;
    }

    public static byte[] Hex(JsonElement e, string name, int bytes) => Convert.FromHexString(HexText(e, name, bytes));

    public static TcbStatus? Status(string text) => text switch
    {
        "UpToDate" => TcbStatus.UpToDate,
        "SWHardeningNeeded" => TcbStatus.SWHardeningNeeded,
        "ConfigurationNeeded" => TcbStatus.ConfigurationNeeded,
        "ConfigurationAndSWHardeningNeeded" => TcbStatus.ConfigurationAndSWHardeningNeeded,
        "OutOfDate" => TcbStatus.OutOfDate,
        "OutOfDateConfigurationNeeded" => TcbStatus.OutOfDateConfigurationNeeded,
        "Revoked" => TcbStatus.Revoked,
        _ => null,
    };

    public static string[] Advisories(JsonElement level) =>
        level.TryGetProperty("advisoryIDs", out var a)
            ? a.EnumerateArray().Select(x => x.GetString() ?? throw Malformed("advisory ID is not a string")).ToArray()
            : [];

    public static IsvSvnLevel[] IsvSvnLevels(JsonElement e)
    {
        var levels = e.GetProperty("tcbLevels").EnumerateArray().Select(l =>
        {
            var statusText = String(l, "tcbStatus");
            return new IsvSvnLevel(Int(l.GetProperty("tcb"), "isvsvn"), Date(l, "tcbDate"), Status(statusText), statusText, Advisories(l));
        });
        return [.. levels.OrderByDescending(l => l.IsvSvn)]; // stable
    }
}
