using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Aci;

/// <summary>A receipt-signing or E2EE key of a keyset: <c>{key_id, algo, public_key}</c> (public key in lower-case hex).</summary>
public sealed record KeysetKey(string KeyId, string Algo, string PublicKey);

/// <summary>A TLS key of a keyset: SHA-256 of the certificate's SubjectPublicKeyInfo (hex), and the domain if any.</summary>
public sealed record KeysetTlsKey(string SpkiSha256, string? Domain = null);

/// <summary>
/// The ACI workload keyset (aci.md §3.1): the workload's identity. Its digest
/// <c>"sha256:" + hex(sha256(JCS(keyset)))</c> is what a quote binds (through <see cref="AciStatement"/>), so any
/// change of a key, the subject or the expiry is a new identity. Keys are per role: receipt keys sign receipts only,
/// E2EE keys only decrypt. Immutable.
/// </summary>
public sealed class WorkloadKeyset
{
    public const string Ed25519 = "ed25519";
    public const string X25519Suite = "x25519-aes-256-gcm-hkdf-sha256";
    public const string Secp256k1Suite = "secp256k1-aes-256-gcm-hkdf-sha256";

    /// <summary>Largest serialised keyset <see cref="Parse(ReadOnlySpan{byte})"/> reads.</summary>
    public const int MaxKeysetBytes = 64 * 1024;

    /// <summary>Most keys of one role a keyset may list.</summary>
    public const int MaxKeysPerRole = 64;

    public WorkloadKeyset(
        string? subject,
        long notAfter,
        IReadOnlyList<KeysetKey> receiptSigningKeys,
        IReadOnlyList<KeysetKey> e2eePublicKeys,
        IReadOnlyList<KeysetTlsKey> tlsPublicKeys)
    {
        ArgumentNullException.ThrowIfNull(receiptSigningKeys);
        ArgumentNullException.ThrowIfNull(e2eePublicKeys);
        ArgumentNullException.ThrowIfNull(tlsPublicKeys);
        Subject = subject;
        NotAfter = notAfter;
        ReceiptSigningKeys = [.. receiptSigningKeys];
        E2eePublicKeys = [.. e2eePublicKeys];
        TlsPublicKeys = [.. tlsPublicKeys];
        CanonicalJson = BuildCanonical();
        Digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(CanonicalJson));
    }

    /// <summary>Naming metadata (e.g. <c>dstack-app://…</c>); untrusted on its own.</summary>
    public string? Subject { get; }

    /// <summary>Unix seconds after which reports, E2EE and receipts under this keyset are rejected.</summary>
    public long NotAfter { get; }

    public IReadOnlyList<KeysetKey> ReceiptSigningKeys { get; }

    public IReadOnlyList<KeysetKey> E2eePublicKeys { get; }

    public IReadOnlyList<KeysetTlsKey> TlsPublicKeys { get; }

    /// <summary>RFC 8785 bytes of the keyset.</summary>
    public byte[] CanonicalJson { get; }

    /// <summary><c>sha256:&lt;64 lower-case hex&gt;</c> of <see cref="CanonicalJson"/>.</summary>
    public string Digest { get; }

    /// <summary>A copy with one more E2EE key (a new identity, so a new digest).</summary>
    public WorkloadKeyset WithE2eeKey(KeysetKey key) => new(Subject, NotAfter, ReceiptSigningKeys, [.. E2eePublicKeys, key], TlsPublicKeys);

    /// <summary>A copy valid until <paramref name="notAfter"/> (Unix seconds): the same keys, a new digest.</summary>
    public WorkloadKeyset WithNotAfter(long notAfter) => new(Subject, notAfter, ReceiptSigningKeys, E2eePublicKeys, TlsPublicKeys);

    /// <summary>True when the keyset has expired at <paramref name="now"/>.</summary>
    public bool IsExpired(DateTimeOffset now) => now.ToUnixTimeSeconds() > NotAfter;

    /// <summary>The E2EE key whose algo is <paramref name="algo"/> and whose public key equals <paramref name="publicKeyHex"/> (hex, either case, optional 0x).</summary>
    public KeysetKey? FindE2eeKey(string algo, string publicKeyHex)
    {
        var wanted = NormaliseHex(publicKeyHex);
        return E2eePublicKeys.FirstOrDefault(k => k.Algo == algo && NormaliseHex(k.PublicKey) == wanted);
    }

    internal static string NormaliseHex(string hex) =>
        (hex.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? hex[2..] : hex).ToLowerInvariant();

    /// <summary>Parses a keyset (any member order, any whitespace) and canonicalises it as parsed.</summary>
    /// <exception cref="AttestationException"><see cref="ErrorCode.ReportMalformed"/> for anything not per aci.md §3.1.</exception>
    public static WorkloadKeyset Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxKeysetBytes)
        {
            throw Malformed($"the keyset is larger than {MaxKeysetBytes} bytes");
        }

        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = Jcs.MaxDepth });
            using var doc = JsonDocument.ParseValue(ref reader);
            return Parse(doc.RootElement);
        }
        catch (JsonException e)
        {
            throw Malformed("the keyset is not JSON: " + e.Message);
        }
    }

    /// <summary>Parses a keyset element.</summary>
    /// <exception cref="AttestationException"><see cref="ErrorCode.ReportMalformed"/> for anything not per aci.md §3.1.</exception>
    public static WorkloadKeyset Parse(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Malformed("the keyset is not a JSON object");
        }

        string? subject = null;
        long? notAfter = null;
        List<KeysetKey>? receipt = null, e2ee = null;
        List<KeysetTlsKey>? tls = null;
        foreach (var member in element.EnumerateObject())
        {
            switch (member.Name)
            {
                case "subject":
                    subject = member.Value.ValueKind switch
                    {
                        JsonValueKind.Null => null,
                        JsonValueKind.String => member.Value.GetString(),
                        _ => throw Malformed("subject must be a string or null"),
                    };
                    break;
                case "not_after":
                    if (member.Value.ValueKind != JsonValueKind.Number || !member.Value.TryGetInt64(out var n) || n < 0)
                    {
                        throw Malformed("not_after must be a non-negative integer (Unix seconds)");
                    }

                    notAfter = n;
                    break;
                case "receipt_signing_keys":
                    receipt = Keys(member.Value, member.Name);
                    break;
                case "e2ee_public_keys":
                    e2ee = Keys(member.Value, member.Name);
                    break;
                case "tls_public_keys":
                    tls = TlsKeys(member.Value);
                    break;
                default:
                    throw Malformed($"the keyset has an unknown member '{member.Name}'");
            }
        }

        if (notAfter is null || receipt is null || e2ee is null || tls is null)
        {
            throw Malformed("the keyset lacks one of not_after, receipt_signing_keys, e2ee_public_keys, tls_public_keys");
        }

        var keyset = new WorkloadKeyset(subject, notAfter.Value, receipt, e2ee, tls);
        var asParsed = Jcs.Canonicalize(element);
        if (!asParsed.AsSpan().SequenceEqual(keyset.CanonicalJson))
        {
            throw Malformed("the keyset does not re-serialise to its own canonical form");
        }

        return keyset;
    }

    private static List<KeysetKey> Keys(JsonElement array, string role)
    {
        if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() > MaxKeysPerRole)
        {
            throw Malformed($"{role} must be an array of at most {MaxKeysPerRole} keys");
        }

        var keys = new List<KeysetKey>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Malformed($"an entry of {role} is not an object");
            }

            string? id = null, algo = null, key = null;
            foreach (var m in item.EnumerateObject())
            {
                if (m.Value.ValueKind != JsonValueKind.String)
                {
                    throw Malformed($"{role}.{m.Name} must be a string");
                }

                switch (m.Name)
                {
                    case "key_id": id = m.Value.GetString(); break;
                    case "algo": algo = m.Value.GetString(); break;
                    case "public_key": key = m.Value.GetString(); break;
                    default: throw Malformed($"an entry of {role} has an unknown member '{m.Name}'");
                }
            }

            if (id is null || algo is null || key is null)
            {
                throw Malformed($"an entry of {role} lacks key_id, algo or public_key");
            }

            keys.Add(new KeysetKey(id, algo, key));
        }

        return keys;
    }

    private static List<KeysetTlsKey> TlsKeys(JsonElement array)
    {
        if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() > MaxKeysPerRole)
        {
            throw Malformed($"tls_public_keys must be an array of at most {MaxKeysPerRole} keys");
        }

        var keys = new List<KeysetTlsKey>();
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("an entry of tls_public_keys is not an object");
            }

            string? spki = null, domain = null;
            foreach (var m in item.EnumerateObject())
            {
                if (m.Value.ValueKind != JsonValueKind.String)
                {
                    throw Malformed($"tls_public_keys.{m.Name} must be a string");
                }

                switch (m.Name)
                {
                    case "spki_sha256": spki = m.Value.GetString(); break;
                    case "domain": domain = m.Value.GetString(); break;
                    default: throw Malformed($"an entry of tls_public_keys has an unknown member '{m.Name}'");
                }
            }

            keys.Add(new KeysetTlsKey(spki ?? throw Malformed("an entry of tls_public_keys lacks spki_sha256"), domain));
        }

        return keys;
    }

    private byte[] BuildCanonical()
    {
        // Members in code-unit order: e2ee_public_keys, not_after, receipt_signing_keys, subject, tls_public_keys.
        var b = new StringBuilder(512);
        b.Append("{\"e2ee_public_keys\":");
        AppendKeys(b, E2eePublicKeys);
        b.Append(",\"not_after\":").Append(NotAfter.ToString(System.Globalization.CultureInfo.InvariantCulture));
        b.Append(",\"receipt_signing_keys\":");
        AppendKeys(b, ReceiptSigningKeys);
        b.Append(",\"subject\":");
        if (Subject is null)
        {
            b.Append("null");
        }
        else
        {
            Jcs.AppendString(b, Subject);
        }

        b.Append(",\"tls_public_keys\":[");
        for (var i = 0; i < TlsPublicKeys.Count; i++)
        {
            var t = TlsPublicKeys[i];
            b.Append(i == 0 ? "{" : ",{");
            if (t.Domain is not null)
            {
                b.Append("\"domain\":");
                Jcs.AppendString(b, t.Domain);
                b.Append(',');
            }

            b.Append("\"spki_sha256\":");
            Jcs.AppendString(b, t.SpkiSha256);
            b.Append('}');
        }

        b.Append("]}");
        return Encoding.UTF8.GetBytes(b.ToString());
    }

    private static void AppendKeys(StringBuilder b, IReadOnlyList<KeysetKey> keys)
    {
        b.Append('[');
        for (var i = 0; i < keys.Count; i++)
        {
            var k = keys[i];
            b.Append(i == 0 ? "{\"algo\":" : ",{\"algo\":");
            Jcs.AppendString(b, k.Algo);
            b.Append(",\"key_id\":");
            Jcs.AppendString(b, k.KeyId);
            b.Append(",\"public_key\":");
            Jcs.AppendString(b, k.PublicKey);
            b.Append('}');
        }

        b.Append(']');
    }

    private static AttestationException Malformed(string why) => new(ErrorCode.ReportMalformed, "ACI keyset: " + why);
}
