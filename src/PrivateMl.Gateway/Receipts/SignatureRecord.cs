using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Gateway.Receipts;

/// <summary>
/// What is stored per response, in the seed proxy's cache shape (<c>text, signature_ecdsa, signing_address_ecdsa,
/// signature_ed25519, signing_address_ed25519</c>) plus our signed receipt document.
/// </summary>
public sealed record SignatureRecord(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("signature_ecdsa")] string SignatureEcdsa,
    [property: JsonPropertyName("signing_address_ecdsa")] string SigningAddressEcdsa,
    [property: JsonPropertyName("signature_ed25519")] string SignatureEd25519,
    [property: JsonPropertyName("signing_address_ed25519")] string SigningAddressEd25519,
    [property: JsonPropertyName("receipt")] string Receipt)
{
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
