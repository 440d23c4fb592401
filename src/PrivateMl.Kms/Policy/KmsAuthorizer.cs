using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Protocol;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.RaTls;

namespace PrivateMl.Kms.Policy;

/// <summary>The authorization of one attested caller: allowed (with what the response reports) or a refusal.</summary>
public sealed record KmsAuthorization(KmsRefusal? Refusal, byte[] OsImageHash, string GatewayAppId, IReadOnlyList<CheckResult> Checks)
{
    public bool Allowed => Refusal is null;
}

/// <summary>
/// Decides whether an attested caller gets keys, after <see cref="RaTlsVerifier"/> (dstack.md §9.4 steps 3–5): its
/// measurements name an allowed OS image, its app id and compose hash are allowed, a <c>key-provider</c> event it
/// already measured names this KMS, and — when the policy names one — the auth webhook (<c>POST {url}/bootAuth/app</c>
/// or <c>/bootAuth/kms</c>, dstack's <c>BootInfo</c> JSON) answers <c>isAllowed: true</c>. Every check runs in order;
/// the first failure is the refusal.
/// </summary>
public sealed class KmsAuthorizer(HttpClient? webhookClient)
{
    /// <summary>Largest webhook response read.</summary>
    public const int MaxWebhookResponseBytes = 64 * 1024;

    public Task<KmsAuthorization> AuthorizeAppAsync(AttestedCaller caller, KmsPolicy policy, string vmConfig, byte[] kmsRootSpki, CancellationToken cancellationToken) =>
        AuthorizeAsync(caller, policy, vmConfig, kmsRootSpki, replica: false, cancellationToken);

    public Task<KmsAuthorization> AuthorizeReplicaAsync(AttestedCaller caller, KmsPolicy policy, string vmConfig, byte[] kmsRootSpki, CancellationToken cancellationToken) =>
        AuthorizeAsync(caller, policy, vmConfig, kmsRootSpki, replica: true, cancellationToken);

    private async Task<KmsAuthorization> AuthorizeAsync(
        AttestedCaller caller, KmsPolicy policy, string vmConfig, byte[] kmsRootSpki, bool replica, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(policy);
        var checks = new List<CheckResult>();
        KmsAuthorization Refuse(string name, ErrorCode code, string reason)
        {
            checks.Add(CheckResult.Fail(name, code, reason));
            return new KmsAuthorization(new KmsRefusal(code, reason), [], "", checks);
        }

        var claimedImage = ClaimedOsImageHash(vmConfig);
        if (claimedImage is null)
        {
            return Refuse("auth.vm-config", ErrorCode.KmsRequestInvalid, "vm_config must be empty or a JSON object whose os_image_hash, if present, is hex");
        }

        var osImageHash = claimedImage.Length > 0 ? claimedImage : caller.Identity.OsImageHash?.ToArray() ?? [];
        if (policy.OsImages is { } images)
        {
            var td = caller.TdReport;
            var match = images.FirstOrDefault(i => td.MrTd.Span.SequenceEqual(i.MrTd) && td.Rtmr0.Span.SequenceEqual(i.Rtmr0)
                && td.Rtmr1.Span.SequenceEqual(i.Rtmr1) && td.Rtmr2.Span.SequenceEqual(i.Rtmr2));
            if (match is null)
            {
                return Refuse("auth.os-image", ErrorCode.KmsOsImageNotAllowed, $"MRTD {Hex(td.MrTd.Span)[..16]}… and RTMR0–2 match no OS image in the policy");
            }

            if (claimedImage.Length > 0 && !claimedImage.AsSpan().SequenceEqual(match.OsImageHash))
            {
                return Refuse("auth.os-image", ErrorCode.KmsOsImageNotAllowed, $"vm_config names OS image {Hex(claimedImage)}, but the measurements are those of {Hex(match.OsImageHash)}");
            }

            osImageHash = match.OsImageHash;
            checks.Add(CheckResult.Pass("auth.os-image", $"OS image {match.Name ?? Hex(match.OsImageHash)}"));
        }
        else
        {
            checks.Add(CheckResult.Skip("auth.os-image", "the policy lists no OS images (any image)"));
        }

        var appIds = replica ? policy.Replicas?.AppIds : policy.AppIds;
        var composeHashes = replica ? policy.Replicas?.ComposeHashes : policy.ComposeHashes;
        if (replica && policy.Replicas is null)
        {
            return Refuse("auth.replica", ErrorCode.KmsNotAKms, "this KMS's policy names no replicas: onboarding is refused");
        }

        if (appIds is not null && !appIds.Any(a => a.AsSpan().SequenceEqual(caller.AppId)))
        {
            return Refuse("auth.app-id", ErrorCode.KmsAppNotAllowed, $"app_id {Hex(caller.AppId)} is not in the policy");
        }

        checks.Add(appIds is null ? CheckResult.Skip("auth.app-id", "any app") : CheckResult.Pass("auth.app-id", Hex(caller.AppId)));
        if (composeHashes is not null && !composeHashes.Any(h => h.AsSpan().SequenceEqual(caller.ComposeHash)))
        {
            return Refuse("auth.compose-hash", ErrorCode.KmsComposeHashNotAllowed, $"compose hash {Hex(caller.ComposeHash)} is not in the policy");
        }

        checks.Add(composeHashes is null ? CheckResult.Skip("auth.compose-hash", "any compose hash") : CheckResult.Pass("auth.compose-hash", Hex(caller.ComposeHash)));
        if (!replica && caller.Identity.KeyProviderInfo is { } provider
            && (caller.Identity.KeyProviderName != "kms" || !string.Equals(caller.Identity.KeyProviderId, Hex(kmsRootSpki), StringComparison.OrdinalIgnoreCase)))
        {
            return Refuse("auth.key-provider", ErrorCode.KmsKeyProviderMismatch, $"the TD measured key provider {provider}, not this KMS");
        }

        var gatewayAppId = policy.GatewayAppId;
        if (policy.Webhook is { } webhook)
        {
            var (allowed, reason, gateway, unavailable) = await AskWebhookAsync(webhook, replica, caller, osImageHash, cancellationToken).ConfigureAwait(false);
            if (unavailable)
            {
                return Refuse("auth.webhook", ErrorCode.KmsAuthUnavailable, $"the auth webhook {webhook} did not answer: {reason}");
            }

            if (!allowed)
            {
                return Refuse("auth.webhook", ErrorCode.KmsAuthDenied, $"Boot denied: {reason}");
            }

            gatewayAppId = gateway ?? gatewayAppId;
            checks.Add(CheckResult.Pass("auth.webhook", "allowed"));
        }

        return new KmsAuthorization(null, osImageHash, gatewayAppId, checks);
    }

    /// <summary>dstack's <c>BootInfo</c> (camelCase, bytes as lower-case hex without 0x).</summary>
    internal static byte[] BootInfoJson(AttestedCaller caller, byte[] osImageHash)
    {
        var td = caller.TdReport;
        var keyProvider = Encoding.UTF8.GetBytes(caller.Identity.KeyProviderInfo ?? "");
        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("mrtd", Hex(td.MrTd.Span));
            w.WriteString("rtmr0", Hex(td.Rtmr0.Span));
            w.WriteString("rtmr1", Hex(td.Rtmr1.Span));
            w.WriteString("rtmr2", Hex(td.Rtmr2.Span));
            w.WriteString("rtmr3", Hex(td.Rtmr3.Span));
            w.WriteString("mrAggregated", Hex(GuestApi.MrAggregated(td)));
            w.WriteString("osImageHash", Hex(osImageHash));
            w.WriteString("mrSystem", Hex(SHA256.HashData([.. td.MrTd.Span, .. td.Rtmr0.Span, .. td.Rtmr1.Span, .. td.Rtmr2.Span,
                .. keyProvider.Length > 0 ? SHA256.HashData(keyProvider) : new byte[32]])));
            w.WriteString("appId", Hex(caller.AppId));
            w.WriteString("composeHash", Hex(caller.ComposeHash));
            w.WriteString("instanceId", Hex(caller.InstanceId));
            w.WriteString("deviceId", Hex(caller.DeviceId));
            w.WriteString("keyProviderInfo", Hex(keyProvider));
            w.WriteString("eventLog", caller.EventLogJson);
            w.WriteString("tcbStatus", caller.Verification.Status?.ToString() ?? "");
            w.WriteStartArray("advisoryIds");
            foreach (var id in caller.Verification.AdvisoryIds)
            {
                w.WriteStringValue(id);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private async Task<(bool Allowed, string Reason, string? GatewayAppId, bool Unavailable)> AskWebhookAsync(
        Uri webhook, bool replica, AttestedCaller caller, byte[] osImageHash, CancellationToken cancellationToken)
    {
        if (webhookClient is null)
        {
            return (false, "no HTTP client is configured for the webhook", null, true);
        }

        var url = new Uri(webhook.AbsoluteUri.TrimEnd('/') + (replica ? "/bootAuth/kms" : "/bootAuth/app"));
        try
        {
            using var content = new ByteArrayContent(BootInfoJson(caller, osImageHash));
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await webhookClient.PostAsync(url, content, cancellationToken).ConfigureAwait(false);
            if (response.Content.Headers.ContentLength > MaxWebhookResponseBytes)
            {
                return (false, "the answer is too large", null, true);
            }

            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode || body.Length > MaxWebhookResponseBytes)
            {
                return (false, $"HTTP {(int)response.StatusCode}", null, true);
            }

            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("isAllowed", out var allowed)
                || allowed.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                return (false, "the answer has no boolean isAllowed", null, true);
            }

            var reason = root.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            var gateway = root.TryGetProperty("gatewayAppId", out var g) && g.ValueKind == JsonValueKind.String ? g.GetString() : null;
            return (allowed.GetBoolean(), reason, gateway, false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            return (false, e.Message, null, true);
        }
    }

    /// <summary>os_image_hash from vm_config: empty when absent; null when vm_config or the field is malformed.</summary>
    private static byte[]? ClaimedOsImageHash(string vmConfig)
    {
        if (string.IsNullOrWhiteSpace(vmConfig))
        {
            return [];
        }

        try
        {
            using var document = JsonDocument.Parse(vmConfig, new JsonDocumentOptions { MaxDepth = 16 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            if (!document.RootElement.TryGetProperty("os_image_hash", out var hash) || hash.ValueKind == JsonValueKind.Null)
            {
                return [];
            }

            var text = hash.ValueKind == JsonValueKind.String ? hash.GetString()! : null;
            if (text is null)
            {
                return null;
            }

            text = text.StartsWith("0x", StringComparison.Ordinal) ? text[2..] : text;
            return text.Length % 2 == 0 && text.All(char.IsAsciiHexDigit) ? Convert.FromHexString(text) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);
}
