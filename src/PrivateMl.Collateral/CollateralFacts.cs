using System.Formats.Asn1;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Collateral;

/// <summary>
/// The unsigned facts a source needs to file and expire collateral: what it is for and until when it is current.
/// Reading them is not verification (nothing here checks a signature); the verifier decides whether to trust them.
/// </summary>
internal sealed record CollateralFacts(
    TeeType Tee,
    string Fmspc,
    PckCaType? Ca,
    DateTimeOffset TcbInfoIssueDate,
    DateTimeOffset TcbInfoNextUpdate,
    DateTimeOffset QeIdentityNextUpdate,
    DateTimeOffset RootCaCrlNextUpdate,
    DateTimeOffset PckCrlNextUpdate)
{
    /// <summary>The first moment at which some item of the bundle is no longer current.</summary>
    public DateTimeOffset EarliestNextUpdate =>
        Min(Min(TcbInfoNextUpdate, QeIdentityNextUpdate), Min(RootCaCrlNextUpdate, PckCrlNextUpdate));

    public bool Matches(CollateralRequest request) =>
        Tee == request.Tee && string.Equals(Fmspc, request.Fmspc, StringComparison.OrdinalIgnoreCase) && Ca == request.Ca;

    public string Describe() =>
        $"{(Tee == TeeType.Tdx ? "TDX" : "SGX")} FMSPC {Fmspc}, {Ca switch { PckCaType.Platform => "platform", PckCaType.Processor => "processor", _ => "unknown" }} CA";

    public static CollateralFacts Read(DcapCollateral collateral, string origin)
    {
        var (tee, fmspc, issue, next) = ReadTcbInfo(collateral.TcbInfo, origin);
        var qeNext = ReadQeIdentityNextUpdate(collateral.QeIdentity, origin);
        var rootNext = CrlNextUpdate(collateral.RootCaCrl, origin + ": root_ca_crl");
        var pckNext = CrlNextUpdate(collateral.PckCrl, origin + ": pck_crl");
        return new CollateralFacts(tee, fmspc, CaOfChain(collateral.PckCrlIssuerChain), issue, next, qeNext, rootNext, pckNext);
    }

    private static (TeeType Tee, string Fmspc, DateTimeOffset IssueDate, DateTimeOffset NextUpdate) ReadTcbInfo(string json, string origin)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw CollateralErrors.Malformed($"{origin}: tcb_info is not a JSON object");
            }

            // TCB info v2 has no "id" and is SGX-only.
            var id = root.TryGetProperty("id", out var idElement) ? idElement.GetString() : "SGX";
            var tee = id switch
            {
                "TDX" => TeeType.Tdx,
                "SGX" => TeeType.Sgx,
                _ => throw CollateralErrors.Malformed($"{origin}: tcb_info id '{id}' is neither TDX nor SGX"),
            };
            var fmspc = RequiredString(root, "fmspc", origin + ": tcb_info");
            if (fmspc.Length != 12 || !fmspc.All(char.IsAsciiHexDigit))
            {
                throw CollateralErrors.Malformed($"{origin}: tcb_info fmspc '{fmspc}' is not 12 hex digits");
            }

            return (tee, fmspc.ToUpperInvariant(), RequiredDate(root, "issueDate", origin + ": tcb_info"), RequiredDate(root, "nextUpdate", origin + ": tcb_info"));
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw CollateralErrors.Malformed($"{origin}: tcb_info is not valid TCB info JSON ({ex.Message})", ex);
        }
    }

    private static DateTimeOffset ReadQeIdentityNextUpdate(string json, string origin)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw CollateralErrors.Malformed($"{origin}: qe_identity is not a JSON object");
            }

            return RequiredDate(doc.RootElement, "nextUpdate", origin + ": qe_identity");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw CollateralErrors.Malformed($"{origin}: qe_identity is not valid enclave identity JSON ({ex.Message})", ex);
        }
    }

    private static string RequiredString(JsonElement obj, string name, string origin) =>
        obj.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw CollateralErrors.Malformed($"{origin}: missing string member '{name}'");

    private static DateTimeOffset RequiredDate(JsonElement obj, string name, string origin)
    {
        var text = RequiredString(obj, name, origin);
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value)
            ? value
            : throw CollateralErrors.Malformed($"{origin}: '{name}' value '{text}' is not an ISO 8601 date");
    }

    /// <summary>Reads nextUpdate of a DER X.509 v2 CRL; a CRL without one never expires by date, which we refuse.</summary>
    internal static DateTimeOffset CrlNextUpdate(ReadOnlyMemory<byte> der, string origin)
    {
        try
        {
            var outer = new AsnReader(der, AsnEncodingRules.DER);
            var certList = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            var tbs = certList.ReadSequence();
            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                tbs.ReadEncodedValue(); // version
            }

            tbs.ReadSequence(); // signature AlgorithmIdentifier
            tbs.ReadSequence(); // issuer Name
            ReadTime(tbs); // thisUpdate
            if (!tbs.HasData)
            {
                throw CollateralErrors.Malformed($"{origin}: the CRL has no nextUpdate");
            }

            var tag = tbs.PeekTag();
            if (!tag.HasSameClassAndValue(Asn1Tag.UtcTime) && !tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime))
            {
                throw CollateralErrors.Malformed($"{origin}: the CRL has no nextUpdate");
            }

            return ReadTime(tbs);
        }
        catch (AsnContentException ex)
        {
            throw CollateralErrors.Malformed($"{origin}: not a DER X.509 CRL ({ex.Message})", ex);
        }
    }

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();

    /// <summary>The PCK CA type named by the first certificate of a PCK CRL issuer chain ("Intel SGX PCK Platform CA").</summary>
    internal static PckCaType? CaOfChain(string pemChain)
    {
        if (!PemEncoding.TryFind(pemChain, out var fields))
        {
            return null;
        }

        try
        {
            var der = Convert.FromBase64String(pemChain[fields.Base64Data]);
            using var certificate = X509CertificateLoader.LoadCertificate(der);
            var cn = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            if (cn.Contains("Platform", StringComparison.OrdinalIgnoreCase))
            {
                return PckCaType.Platform;
            }

            return cn.Contains("Processor", StringComparison.OrdinalIgnoreCase) ? PckCaType.Processor : null;
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            return null;
        }
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a <= b ? a : b;
}
