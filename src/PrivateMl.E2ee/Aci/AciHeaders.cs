using System.Globalization;

namespace PrivateMl.E2ee.Aci;

/// <summary>The E2EE v2 header names and values (e2ee-v2.md §3).</summary>
public static class AciHeaders
{
    public const string Version = "X-E2EE-Version";
    public const string ClientPublicKey = "X-Client-Pub-Key";
    public const string ModelPublicKey = "X-Model-Pub-Key";
    public const string Nonce = "X-E2EE-Nonce";
    public const string Timestamp = "X-E2EE-Timestamp";

    /// <summary>Its presence routes to the legacy (v1, no AAD) path, which this implementation refuses.</summary>
    public const string LegacySigningAlgo = "X-Signing-Algo";

    public const string Applied = "X-E2EE-Applied";
    public const string Algo = "X-E2EE-Algo";
    public const string AciVersion = "X-ACI-Version";
    public const string KeysetDigest = "X-ACI-Keyset-Digest";

    public const string V2 = "2";

    /// <summary>The acceptance window for <see cref="Timestamp"/>: |now − ts| ≤ 300 s.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(300);

    /// <summary>Every request header that signals E2EE of the ACI family (v2 or legacy).</summary>
    public static readonly string[] Signals = [Version, ClientPublicKey, ModelPublicKey, Nonce, Timestamp, LegacySigningAlgo, "X-Encryption-Version"];
}

/// <summary>A v2 request whose headers passed validation, before the body is looked at.</summary>
/// <param name="Suite">The suite fixed by the first keyset key that matches <c>X-Model-Pub-Key</c>.</param>
/// <param name="ServiceKey">That keyset entry.</param>
/// <param name="ClientPublicKey">The client key, normalised for the suite.</param>
/// <param name="Nonce">The nonce header as sent.</param>
/// <param name="Timestamp">Unix seconds.</param>
public sealed record AciRequestHeaders(AciSuite Suite, KeysetKey ServiceKey, byte[] ClientPublicKey, string Nonce, long Timestamp)
{
    /// <summary>
    /// Validates the five headers in the spec's order (e2ee-v2.md §7): legacy signal, version, presence, nonce,
    /// timestamp window, service key in the keyset (its suite), client key valid for that suite. Throws
    /// <see cref="AciE2eeException"/> with the spec's code. <paramref name="header"/> returns a header's value or null.
    /// </summary>
    public static AciRequestHeaders Validate(Func<string, string?> header, WorkloadKeyset keyset, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(keyset);
        if (header(AciHeaders.LegacySigningAlgo) is not null || header("X-Encryption-Version") is not null)
        {
            throw new AciE2eeException(AciE2eeError.InvalidVersion, "legacy (v1, no AAD, no replay protection) E2EE is not offered; use X-E2EE-Version: 2");
        }

        var version = header(AciHeaders.Version);
        if (version is not null && version != AciHeaders.V2)
        {
            throw new AciE2eeException(AciE2eeError.InvalidVersion, "X-E2EE-Version must be 2");
        }

        var client = header(AciHeaders.ClientPublicKey);
        var model = header(AciHeaders.ModelPublicKey);
        var nonce = header(AciHeaders.Nonce);
        var ts = header(AciHeaders.Timestamp);
        if (version is null || client is null || model is null || nonce is null || ts is null)
        {
            throw new AciE2eeException(AciE2eeError.HeaderMissing, "an E2EE v2 request needs X-E2EE-Version, X-Client-Pub-Key, X-Model-Pub-Key, X-E2EE-Nonce and X-E2EE-Timestamp");
        }

        if (nonce.Length != 64 || !nonce.All(Uri.IsHexDigit))
        {
            throw new AciE2eeException(AciE2eeError.InvalidNonce, "X-E2EE-Nonce must be 64 hex characters (32 bytes)");
        }

        if (ts.Length is 0 or > 19 || !ts.All(char.IsAsciiDigit) || !long.TryParse(ts, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp))
        {
            throw new AciE2eeException(AciE2eeError.InvalidTimestamp, "X-E2EE-Timestamp must be Unix seconds");
        }

        var skew = now.ToUnixTimeSeconds() - timestamp;
        if (skew > AciHeaders.Window.TotalSeconds || skew < -AciHeaders.Window.TotalSeconds)
        {
            throw new AciE2eeException(AciE2eeError.InvalidTimestamp, $"X-E2EE-Timestamp is outside the ±{AciHeaders.Window.TotalSeconds:0} s window");
        }

        if (keyset.IsExpired(now))
        {
            throw new AciE2eeException(AciE2eeError.ModelKeyMismatch, "the service keyset has expired");
        }

        foreach (var entry in keyset.E2eePublicKeys)
        {
            if (AciSuites.FromAlgo(entry.Algo) is not { } suite)
            {
                continue;
            }

            var offered = suite.ParsePublicKey(model);
            var listed = suite.ParsePublicKey(entry.PublicKey);
            if (offered is null || listed is null || !offered.AsSpan().SequenceEqual(listed))
            {
                continue;
            }

            var clientKey = suite.ParsePublicKey(client)
                ?? throw new AciE2eeException(AciE2eeError.InvalidPublicKey, $"X-Client-Pub-Key is not a valid {suite.Algo()} public key");
            return new AciRequestHeaders(suite, entry, clientKey, nonce, timestamp);
        }

        throw new AciE2eeException(AciE2eeError.ModelKeyMismatch, "X-Model-Pub-Key is not an E2EE v2 key of this service's keyset");
    }
}
