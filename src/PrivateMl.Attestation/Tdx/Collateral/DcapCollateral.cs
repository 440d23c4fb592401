using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Attestation.Tdx.Collateral;

/// <summary>
/// DCAP collateral in dcap-qvl's JSON shape (<c>QuoteCollateralV3</c>). Every member keeps the exact text that was
/// signed or served: <see cref="TcbInfo"/> and <see cref="QeIdentity"/> are the raw JSON object texts whose bytes the
/// signatures cover, chains are PEM, CRLs are DER bytes (hex in the JSON).
/// </summary>
public sealed record DcapCollateral
{
    [JsonPropertyName("pck_crl_issuer_chain")]
    public required string PckCrlIssuerChain { get; init; }

    [JsonPropertyName("root_ca_crl")]
    [JsonConverter(typeof(HexBytesConverter))]
    public required byte[] RootCaCrl { get; init; }

    [JsonPropertyName("pck_crl")]
    [JsonConverter(typeof(HexBytesConverter))]
    public required byte[] PckCrl { get; init; }

    [JsonPropertyName("tcb_info_issuer_chain")]
    public required string TcbInfoIssuerChain { get; init; }

    [JsonPropertyName("tcb_info")]
    public required string TcbInfo { get; init; }

    [JsonPropertyName("tcb_info_signature")]
    [JsonConverter(typeof(HexBytesConverter))]
    public required byte[] TcbInfoSignature { get; init; }

    [JsonPropertyName("qe_identity_issuer_chain")]
    public required string QeIdentityIssuerChain { get; init; }

    [JsonPropertyName("qe_identity")]
    public required string QeIdentity { get; init; }

    [JsonPropertyName("qe_identity_signature")]
    [JsonConverter(typeof(HexBytesConverter))]
    public required byte[] QeIdentitySignature { get; init; }

    /// <summary>Optional PCK certificate chain (PEM) for quotes whose certification data does not carry one.</summary>
    [JsonPropertyName("pck_certificate_chain")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? PckCertificateChain { get; init; }
}

/// <summary>Lower-case hex on the wire, bytes in memory.</summary>
public sealed class HexBytesConverter : JsonConverter<byte[]>
{
    public override byte[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.GetString() ?? throw new JsonException("expected a hex string");
        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException ex)
        {
            throw new JsonException("expected a hex string", ex);
        }
    }

    public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options) =>
        writer.WriteStringValue(Convert.ToHexStringLower(value));
}
