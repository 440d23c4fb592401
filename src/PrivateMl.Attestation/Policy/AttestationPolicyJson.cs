using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Policy;

/// <summary>
/// Reads an <see cref="AttestationPolicy"/> from JSON (camelCase members, hex byte strings, <c>//</c> comments
/// allowed; see <c>docs/policy.example.json</c>). Everything is checked once, here: unknown or repeated members, wrong
/// types, unknown TCB statuses and wrong byte lengths are <see cref="ErrorCode.PolicyInvalid"/> with a message naming
/// the member, what it must be and what it is.
/// </summary>
public static class AttestationPolicyJson
{
    public const int MaxPolicyBytes = 1024 * 1024;

    private static readonly string[] Members =
    [
        "description", "acceptedTcbStatuses", "allowedAdvisoryIds", "minimumTcbEvaluationDataNumber", "allowDebug",
        "allowSimulated", "tdAttributes", "xfam", "mrSeamAllowList", "minimumTeeTcbSvn", "mrTd", "rtmr0", "rtmr1",
        "rtmr2", "rtmr3", "mrConfigId", "mrOwner", "mrOwnerConfig", "reportData",
    ];

    public static AttestationPolicy Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > MaxPolicyBytes)
            {
                throw Invalid($"{path}: {info.Length} bytes is over the {MaxPolicyBytes}-byte limit for a policy file");
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AttestationException(ErrorCode.PolicyInvalid, $"{path}: cannot read the policy file ({ex.Message})", ex);
        }

        return Parse(bytes, path);
    }

    public static AttestationPolicy Parse(ReadOnlySpan<byte> utf8Json, string origin = "policy")
    {
        if (utf8Json.Length > MaxPolicyBytes)
        {
            throw Invalid($"{origin}: {utf8Json.Length} bytes is over the {MaxPolicyBytes}-byte limit for a policy");
        }

        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 8 });
            document = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                throw Invalid($"{origin}: text after the policy object");
            }
        }
        catch (JsonException ex)
        {
            throw new AttestationException(ErrorCode.PolicyInvalid, $"{origin}: not valid JSON ({ex.Message})", ex);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Invalid($"{origin}: the policy must be a JSON object, not {root.ValueKind}");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            var policy = new AttestationPolicy();
            foreach (var member in root.EnumerateObject())
            {
                var name = member.Name;
                var where = $"{origin}: '{name}'";
                if (!Members.Contains(name, StringComparer.Ordinal))
                {
                    var near = Members.FirstOrDefault(m => string.Equals(m, name, StringComparison.OrdinalIgnoreCase));
                    throw Invalid($"{origin}: unknown member '{name}'" + (near is null ? $" (known: {string.Join(", ", Members)})" : $" (did you mean '{near}'?)"));
                }

                if (!seen.Add(name))
                {
                    throw Invalid($"{where} appears more than once");
                }

                var value = member.Value;
                if (value.ValueKind == JsonValueKind.Null)
                {
                    continue; // null = unset, the default
                }

                policy = name switch
                {
                    "description" => policy with { Description = String(value, where) },
                    "acceptedTcbStatuses" => policy with { AcceptedTcbStatuses = Statuses(value, where) },
                    "allowedAdvisoryIds" => policy with { AllowedAdvisoryIds = Advisories(value, where) },
                    "minimumTcbEvaluationDataNumber" => policy with { MinimumTcbEvaluationDataNumber = NonNegativeInt(value, where) },
                    "allowDebug" => policy with { AllowDebug = Bool(value, where) },
                    "allowSimulated" => policy with { AllowSimulated = Bool(value, where) },
                    "tdAttributes" => policy with { TdAttributes = Hex(value, AttestationPolicy.TdAttributesLength, where) },
                    "xfam" => policy with { Xfam = Hex(value, AttestationPolicy.XfamLength, where) },
                    "mrSeamAllowList" => policy with { MrSeamAllowList = HexList(value, AttestationPolicy.MeasurementLength, origin, name) },
                    "minimumTeeTcbSvn" => policy with { MinimumTeeTcbSvn = Hex(value, AttestationPolicy.TeeTcbSvnLength, where) },
                    "mrTd" => policy with { MrTd = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "rtmr0" => policy with { Rtmr0 = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "rtmr1" => policy with { Rtmr1 = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "rtmr2" => policy with { Rtmr2 = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "rtmr3" => policy with { Rtmr3 = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "mrConfigId" => policy with { MrConfigId = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "mrOwner" => policy with { MrOwner = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "mrOwnerConfig" => policy with { MrOwnerConfig = Hex(value, AttestationPolicy.MeasurementLength, where) },
                    "reportData" => policy with { ReportData = Hex(value, AttestationPolicy.ReportDataLength, where) },
                    _ => throw new InvalidOperationException("unreachable: member list and switch disagree"),
                };
            }

            return policy;
        }
    }

    private static AttestationException Invalid(string message) => new(ErrorCode.PolicyInvalid, message);

    private static string String(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Invalid($"{where} must be a string, not {value.ValueKind}");

    private static bool Bool(JsonElement value, string where) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Invalid($"{where} must be true or false, not {value.ValueKind}"),
    };

    private static int NonNegativeInt(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) && n >= 0
            ? n
            : throw Invalid($"{where} must be a non-negative integer, got {value.GetRawText()}");

    private static JsonElement.ArrayEnumerator Array(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.Array ? value.EnumerateArray() : throw Invalid($"{where} must be an array, not {value.ValueKind}");

    private static HashSet<TcbStatus> Statuses(JsonElement value, string where)
    {
        var statuses = new HashSet<TcbStatus>();
        foreach (var item in Array(value, where))
        {
            var text = String(item, where + " entry");
            if (!Enum.GetNames<TcbStatus>().Contains(text, StringComparer.Ordinal))
            {
                throw Invalid($"{where}: '{text}' is not a TCB status (one of {string.Join(", ", Enum.GetNames<TcbStatus>().Where(n => n != nameof(TcbStatus.Revoked)))})");
            }

            var status = Enum.Parse<TcbStatus>(text);
            if (status == TcbStatus.Revoked)
            {
                throw Invalid($"{where}: a Revoked TCB can never be accepted");
            }

            statuses.Add(status);
        }

        return statuses.Count > 0 ? statuses : throw Invalid($"{where} must name at least one status (UpToDate is the default)");
    }

    private static HashSet<string> Advisories(JsonElement value, string where)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in Array(value, where))
        {
            var id = String(item, where + " entry");
            if (string.IsNullOrWhiteSpace(id) || id.Trim() != id)
            {
                throw Invalid($"{where}: '{id}' is not an advisory ID (e.g. INTEL-SA-00837)");
            }

            ids.Add(id);
        }

        return ids;
    }

    private static ReadOnlyMemory<byte> Hex(JsonElement value, int length, string where)
    {
        var text = String(value, where);
        if (text.Length != 2 * length)
        {
            throw Invalid($"{where} must be {length} bytes ({2 * length} hex digits), got {text.Length} characters" + (text.Length % 2 == 0 ? $" ({text.Length / 2} byte{(text.Length == 2 ? string.Empty : "s")})" : string.Empty));
        }

        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException ex)
        {
            throw new AttestationException(ErrorCode.PolicyInvalid, $"{where} must be hex digits only, got '{text}'", ex);
        }
    }

    private static List<ReadOnlyMemory<byte>> HexList(JsonElement value, int length, string origin, string name)
    {
        var where = $"{origin}: '{name}'";
        var list = Array(value, where).Select((item, i) => Hex(item, length, $"{origin}: '{name}[{i}]'")).ToList();
        return list.Count > 0 ? list : throw Invalid($"{where} is empty, which would admit nothing; leave it out to skip the check");
    }
}
