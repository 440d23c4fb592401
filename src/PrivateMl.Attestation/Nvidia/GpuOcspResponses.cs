using System.Security.Cryptography.X509Certificates;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>
/// One OCSP exchange for one certificate, as fetched online: the nonce sent and either the responder's DER answer or
/// why none came (unreachable, HTTP error, too large). Verified later by <see cref="GpuOcsp.VerifyResponse"/>.
/// </summary>
public sealed record OcspExchange(string CertificateKey, Uri Responder, byte[] Nonce, byte[]? Response, string? FetchError);

/// <summary>
/// The OCSP answers gathered for a payload's certificates (see <c>PrivateMl.Collateral.Nvidia.NvidiaOcspClient</c>),
/// keyed by certificate (issuer DN and serial): the input that turns the verifier's OCSP check from "not checked"
/// into a verified good / revoked / unknown per certificate.
/// </summary>
public sealed class GpuOcspResponses
{
    private readonly Dictionary<string, OcspExchange> _exchanges = new(StringComparer.Ordinal);

    public int Count => _exchanges.Count;

    public IEnumerable<OcspExchange> Exchanges => _exchanges.Values;

    public void Add(OcspExchange exchange)
    {
        ArgumentNullException.ThrowIfNull(exchange);
        _exchanges[exchange.CertificateKey] = exchange;
    }

    public OcspExchange? Find(X509Certificate2 certificate) => _exchanges.GetValueOrDefault(KeyOf(certificate));

    public bool Contains(X509Certificate2 certificate) => _exchanges.ContainsKey(KeyOf(certificate));

    /// <summary>Identifies a certificate: hex of its issuer DN (DER) and its serial number.</summary>
    public static string KeyOf(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Convert.ToHexStringLower(certificate.IssuerName.RawData) + "/" + Convert.ToHexStringLower(certificate.SerialNumberBytes.Span);
    }
}
