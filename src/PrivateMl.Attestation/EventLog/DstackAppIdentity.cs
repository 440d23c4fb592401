using System.Text.Json;

namespace PrivateMl.Attestation.EventLog;

/// <summary>
/// The app identity a dstack CVM measured into RTMR3 at boot, read from its event log the way dstack reads it
/// (<c>decode_app_info</c>): RTMR3 runtime events are scanned in order and reading stops at the first
/// <c>system-ready</c>, so events an app emits later cannot stand in for the boot-time ones. The first occurrence of
/// each name wins. Only meaningful for a log that has been replayed against a verified quote (<see cref="RtmrReplay"/>).
/// </summary>
public sealed class DstackAppIdentity
{
    private DstackAppIdentity()
    {
    }

    /// <summary>Payload of <c>app-id</c> (20 bytes), or null when absent.</summary>
    public ReadOnlyMemory<byte>? AppId { get; private set; }

    /// <summary>Payload of <c>instance-id</c> (20 bytes, or empty when the app has no instance id), or null when absent.</summary>
    public ReadOnlyMemory<byte>? InstanceId { get; private set; }

    /// <summary>Payload of <c>compose-hash</c> (or the older <c>upgraded-app-id</c>): SHA-256 of app-compose.json. dstack requires it.</summary>
    public ReadOnlyMemory<byte>? ComposeHash { get; private set; }

    /// <summary>Payload of <c>os-image-hash</c> (32 bytes; KMS mode only), or null.</summary>
    public ReadOnlyMemory<byte>? OsImageHash { get; private set; }

    /// <summary>Payload of <c>mr-kms</c> (KMS mode, dstack ≤ 0.5.x), or null.</summary>
    public ReadOnlyMemory<byte>? MrKms { get; private set; }

    /// <summary>Payload of <c>key-provider</c> as text, e.g. <c>{"name":"kms","id":"3059…"}</c>, or null.</summary>
    public string? KeyProviderInfo { get; private set; }

    /// <summary>The <c>name</c> field of <see cref="KeyProviderInfo"/> ("kms", "local-sgx", "none"), or null when absent or not that JSON.</summary>
    public string? KeyProviderName { get; private set; }

    /// <summary>The <c>id</c> field of <see cref="KeyProviderInfo"/> (hex text), or null.</summary>
    public string? KeyProviderId { get; private set; }

    /// <summary>Payload of <c>storage-fs</c> as text ("zfs", "ext4"), or null.</summary>
    public string? StorageFs { get; private set; }

    /// <summary>True when the log contains <c>system-ready</c> in RTMR3, i.e. the boot sequence completed.</summary>
    public bool SystemReady { get; private set; }

    /// <summary>RTMR3 runtime events after <c>system-ready</c> (emitted by apps), in log order.</summary>
    public IReadOnlyList<TdxEvent> AppEvents { get; private set; } = [];

    /// <summary>Reads the identity from a log. Missing events leave their property null; this never throws for log content.</summary>
    public static DstackAppIdentity FromEventLog(IEnumerable<TdxEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var identity = new DstackAppIdentity();
        var appEvents = new List<TdxEvent>();
        foreach (var e in events)
        {
            if (e.Imr != 3 || !e.IsRuntimeEvent)
            {
                continue;
            }

            if (identity.SystemReady)
            {
                appEvents.Add(e);
                continue;
            }

            var payload = e.EventPayload;
            switch (e.Event)
            {
                case DstackEventNames.SystemReady:
                    identity.SystemReady = true;
                    break;
                case DstackEventNames.AppId:
                    identity.AppId ??= payload;
                    break;
                case DstackEventNames.InstanceId:
                    identity.InstanceId ??= payload;
                    break;
                case DstackEventNames.ComposeHash:
                case DstackEventNames.UpgradedAppId:
                    identity.ComposeHash ??= payload;
                    break;
                case DstackEventNames.OsImageHash:
                    identity.OsImageHash ??= payload;
                    break;
                case DstackEventNames.MrKms:
                    identity.MrKms ??= payload;
                    break;
                case DstackEventNames.KeyProvider:
                    if (identity.KeyProviderInfo is null)
                    {
                        identity.KeyProviderInfo = e.PayloadText;
                        (identity.KeyProviderName, identity.KeyProviderId) = ParseKeyProvider(payload.Span);
                    }

                    break;
                case DstackEventNames.StorageFs:
                    identity.StorageFs ??= e.PayloadText;
                    break;
                default:
                    break;
            }
        }

        identity.AppEvents = appEvents;
        return identity;
    }

    private static (string? Name, string? Id) ParseKeyProvider(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 4 });
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }

            var name = doc.RootElement.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
            var id = doc.RootElement.TryGetProperty("id", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString() : null;
            return (name, id);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }
}
