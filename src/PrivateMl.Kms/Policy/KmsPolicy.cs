using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Kms.Policy;

/// <summary>
/// An OS image the KMS accepts, named by dstack's <c>os_image_hash</c> and pinned by the measurements that image
/// boots to (MRTD, RTMR0–2). dstack recomputes those from the image with dstack-mr; this KMS compares the quote with
/// the values the operator lists (e.g. from <c>dstack-mr</c> or <c>privateml vmm</c> output).
/// </summary>
public sealed record KmsOsImage(byte[] OsImageHash, byte[] MrTd, byte[] Rtmr0, byte[] Rtmr1, byte[] Rtmr2)
{
    public string? Name { get; init; }
}

/// <summary>Which KMS instances may replicate the root keys (onboarding): attested app ids or compose hashes.</summary>
public sealed record KmsReplicaPolicy(IReadOnlyList<byte[]>? AppIds, IReadOnlyList<byte[]>? ComposeHashes);

/// <summary>
/// Who gets keys (dstack's auth API, as a file; dstack.md §9.4). Strict by default: TCB UpToDate only, no debug TDs,
/// quotes at most 10 minutes old. A list left unset admits any value (dstack's "dev" auth) and is reported as Skipped;
/// an empty list admits nothing. Onboarding is refused unless <see cref="Replicas"/> is set.
/// </summary>
public sealed record KmsPolicy
{
    public static KmsPolicy Default { get; } = new();

    public IReadOnlySet<TcbStatus> AcceptedTcbStatuses { get; init; } = new HashSet<TcbStatus> { TcbStatus.UpToDate };

    public bool AllowDebug { get; init; }

    /// <summary>Largest age of a client certificate's quote (from its notBefore, and from when this KMS first saw it); null disables.</summary>
    public TimeSpan? FreshnessWindow { get; init; } = TimeSpan.FromMinutes(10);

    public IReadOnlyList<KmsOsImage>? OsImages { get; init; }

    public IReadOnlyList<byte[]>? AppIds { get; init; }

    public IReadOnlyList<byte[]>? ComposeHashes { get; init; }

    public KmsReplicaPolicy? Replicas { get; init; }

    /// <summary>dstack's auth webhook: <c>POST {url}/bootAuth/app</c> (and <c>/bootAuth/kms</c>) must also allow.</summary>
    public Uri? Webhook { get; init; }

    /// <summary>Returned as <c>gateway_app_id</c> when no webhook says otherwise.</summary>
    public string GatewayAppId { get; init; } = "";

    /// <summary>
    /// Reads a policy file:
    /// <code>
    /// { "acceptedTcbStatuses": ["UpToDate"], "allowDebug": false, "freshnessSeconds": 600,
    ///   "osImages": [{ "name": "…", "osImageHash": "hex32", "mrtd": "hex48", "rtmr0": "…", "rtmr1": "…", "rtmr2": "…" }],
    ///   "appIds": ["hex20"], "composeHashes": ["hex32"],
    ///   "replicas": { "appIds": [], "composeHashes": [] }, "webhook": "https://auth.example", "gatewayAppId": "" }
    /// </code>
    /// </summary>
    /// <exception cref="AttestationException"><see cref="ErrorCode.PolicyInvalid"/> naming the bad field.</exception>
    public static KmsPolicy Load(string path) => Parse(File.ReadAllText(path));

    public static KmsPolicy Parse(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw Invalid($"the policy is not JSON: {e.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Invalid("the policy must be a JSON object");
            }

            var policy = new KmsPolicy();
            foreach (var property in root.EnumerateObject())
            {
                policy = property.Name switch
                {
                    "acceptedTcbStatuses" => policy with { AcceptedTcbStatuses = Statuses(property.Value) },
                    "allowDebug" => policy with { AllowDebug = Bool(property) },
                    "freshnessSeconds" => policy with { FreshnessWindow = property.Value.ValueKind == JsonValueKind.Null ? null : TimeSpan.FromSeconds(PositiveInt(property)) },
                    "osImages" => policy with { OsImages = ParseOsImages(property.Value) },
                    "appIds" => policy with { AppIds = HexList(property, 20) },
                    "composeHashes" => policy with { ComposeHashes = HexList(property, 32) },
                    "replicas" => policy with { Replicas = ParseReplicas(property.Value) },
                    "webhook" => policy with { Webhook = Url(property) },
                    "gatewayAppId" => policy with { GatewayAppId = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()! : throw Invalid("gatewayAppId must be a string") },
                    "description" => policy,
                    _ => throw Invalid($"unknown policy field '{property.Name}'"),
                };
            }

            return policy;
        }
    }

    private static HashSet<TcbStatus> Statuses(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
        {
            throw Invalid("acceptedTcbStatuses must be a non-empty array");
        }

        var set = new HashSet<TcbStatus>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || !Enum.TryParse<TcbStatus>(item.GetString(), ignoreCase: false, out var status) || status == TcbStatus.Revoked)
            {
                throw Invalid($"acceptedTcbStatuses: '{item}' is not an acceptable TCB status");
            }

            set.Add(status);
        }

        return set;
    }

    private static List<KmsOsImage> ParseOsImages(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Invalid("osImages must be an array");
        }

        var images = new List<KmsOsImage>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Invalid("each osImages entry must be an object");
            }

            images.Add(new KmsOsImage(
                Field(item, "osImageHash", 32), Field(item, "mrtd", 48), Field(item, "rtmr0", 48), Field(item, "rtmr1", 48), Field(item, "rtmr2", 48))
            {
                Name = item.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null,
            });
        }

        return images;
    }

    private static KmsReplicaPolicy ParseReplicas(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Invalid("replicas must be an object");
        }

        IReadOnlyList<byte[]>? appIds = null;
        IReadOnlyList<byte[]>? composeHashes = null;
        foreach (var property in value.EnumerateObject())
        {
            switch (property.Name)
            {
                case "appIds":
                    appIds = HexList(property, 20);
                    break;
                case "composeHashes":
                    composeHashes = HexList(property, 32);
                    break;
                default:
                    throw Invalid($"unknown replicas field '{property.Name}'");
            }
        }

        return new KmsReplicaPolicy(appIds, composeHashes);
    }

    private static byte[] Field(JsonElement item, string name, int length) =>
        item.TryGetProperty(name, out var value) ? Hex(value, name, length) : throw Invalid($"osImages entry lacks '{name}'");

    private static List<byte[]> HexList(JsonProperty property, int length)
    {
        if (property.Value.ValueKind != JsonValueKind.Array)
        {
            throw Invalid($"{property.Name} must be an array of hex strings");
        }

        return [.. property.Value.EnumerateArray().Select(v => Hex(v, property.Name, length))];
    }

    internal static byte[] Hex(JsonElement value, string name, int length)
    {
        var text = value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Invalid($"{name} must be hex text");
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        if (text.Length != 2 * length || !text.All(char.IsAsciiHexDigit))
        {
            throw Invalid($"{name}: '{text}' is not {length} bytes of hex");
        }

        return Convert.FromHexString(text);
    }

    private static bool Bool(JsonProperty property) => property.Value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Invalid($"{property.Name} must be true or false"),
    };

    private static int PositiveInt(JsonProperty property) =>
        property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetInt32(out var value) && value > 0
            ? value : throw Invalid($"{property.Name} must be a positive integer or null");

    private static Uri Url(JsonProperty property) =>
        property.Value.ValueKind == JsonValueKind.String && Uri.TryCreate(property.Value.GetString(), UriKind.Absolute, out var url)
        && (url.Scheme == Uri.UriSchemeHttps || url.Scheme == Uri.UriSchemeHttp)
            ? url : throw Invalid($"{property.Name} must be an http(s) URL");

    private static AttestationException Invalid(string message) => new(ErrorCode.PolicyInvalid, message);
}
