using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Gateway.Receipts;

/// <summary>
/// What is stored per response, in the seed proxy's cache shape (<c>text, signature_ecdsa, signing_address_ecdsa,
/// signature_ed25519, signing_address_ed25519</c>) plus our signed receipt document and, when bearer auth is on, a
/// hash of the credential that made the request (<see cref="CredentialHash"/>; never the token itself): only the
/// same credential may read the record back.
/// </summary>
public sealed record SignatureRecord(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("signature_ecdsa")] string SignatureEcdsa,
    [property: JsonPropertyName("signing_address_ecdsa")] string SigningAddressEcdsa,
    [property: JsonPropertyName("signature_ed25519")] string SignatureEd25519,
    [property: JsonPropertyName("signing_address_ed25519")] string SigningAddressEd25519,
    [property: JsonPropertyName("receipt")] string Receipt,
    [property: JsonPropertyName("credential_sha256"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? CredentialHash = null)
{
    /// <summary>
    /// Whether a caller presenting <paramref name="callerCredentialHash"/> may read this record: records made without
    /// a credential (public mode) are readable by anyone; others only by the same credential (constant-time compare).
    /// </summary>
    public bool IsReadableBy(string? callerCredentialHash)
    {
        if (CredentialHash is null)
        {
            return true;
        }

        return callerCredentialHash is not null && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.ASCII.GetBytes(CredentialHash), System.Text.Encoding.ASCII.GetBytes(callerCredentialHash));
    }

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, GatewayJsonContext.Default.SignatureRecord);

    /// <summary>Parses a stored record; null when it is not one.</summary>
    public static SignatureRecord? TryParse(ReadOnlySpan<byte> json)
    {
        try
        {
            var record = JsonSerializer.Deserialize(json, GatewayJsonContext.Default.SignatureRecord);
            return record is { Text: not null, SignatureEcdsa: not null, SignatureEd25519: not null, Receipt: not null } ? record : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

[JsonSerializable(typeof(SignatureRecord))]
internal sealed partial class GatewayJsonContext : JsonSerializerContext;
