using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Tee.EventLog;

namespace PrivateMl.Agent.Certificates;

/// <summary>A quote over 64 bytes of report data, with the event-log JSON that replays to its RTMRs.</summary>
/// <param name="Quote">Raw TDX quote.</param>
/// <param name="EventLogJson">Compact JSON array of event-log entries (dstack's <c>event_log</c> string).</param>
public sealed record RaTlsEvidence(byte[] Quote, string EventLogJson);

/// <summary>Takes a quote over exactly 64 bytes of report data (the local TDX device, or a guest agent's <c>/GetQuote</c>).</summary>
public delegate ValueTask<RaTlsEvidence> RaTlsQuoteSource(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken);

/// <summary>
/// RA-TLS certificates as dstack makes them (dstack.md §9.3): a fresh P-256 key, a quote whose report_data is
/// SHA-512("ratls-cert:" ‖ SPKI DER), the quote and event log as extensions .1.1 / .1.2, a usage string (.1.4). Used
/// for the CVM's client certificate towards a KMS (<c>generate_ra_cert</c>, signed by the KMS temp CA) and for a KMS's
/// own server certificate (<c>kms:rpc</c>).
/// </summary>
public static class RaTlsCertificates
{
    /// <summary>Usage of a KMS server certificate.</summary>
    public const string KmsRpcUsage = "kms:rpc";

    /// <summary>Usage of an app's leaf certificates.</summary>
    public const string AppCustomUsage = "app:custom";

    /// <summary>
    /// A client certificate (with its private key) for mutual TLS: subject <c>RA-TLS TEMP Cert</c>, clientAuth, valid
    /// from <paramref name="now"/> minus one minute for <paramref name="lifetime"/>, signed by <paramref name="issuer"/>
    /// (dstack: the KMS temp CA) or self-signed when null.
    /// </summary>
    public static async Task<X509Certificate2> CreateClientAsync(
        RaTlsQuoteSource quoteSource,
        DateTimeOffset now,
        TimeSpan lifetime,
        (X509Certificate2 Certificate, ECDsa Key)? issuer,
        RandomNumberGenerator random,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(quoteSource);
        ArgumentNullException.ThrowIfNull(random);
        using var key = LocalKeyProvider.NewP256(random);
        var evidence = await quoteSource(CertificateFactory.RaTlsReportData(key), cancellationToken).ConfigureAwait(false);
        return CreateClient(key, evidence, now.AddMinutes(-1), now + lifetime, issuer);
    }

    /// <summary>A client certificate for <paramref name="key"/> carrying <paramref name="evidence"/> as given (tests build defective ones).</summary>
    internal static X509Certificate2 CreateClient(
        ECDsa key, RaTlsEvidence evidence, DateTimeOffset notBefore, DateTimeOffset notAfter, (X509Certificate2 Certificate, ECDsa Key)? issuer)
    {
        var leaf = new LeafCertificateRequest
        {
            Subject = "RA-TLS TEMP Cert",
            ClientAuth = true,
            NotBefore = notBefore,
            NotAfter = notAfter,
            Quote = evidence.Quote,
            EventLogJson = Encoding.UTF8.GetBytes(evidence.EventLogJson),
            Usage = AppCustomUsage,
        };
        return WithKey(Issue(key, leaf, issuer), key);
    }

    /// <summary>
    /// A server certificate for a KMS (usage <c>kms:rpc</c>, serverAuth, the given DNS / IP names) signed by the KMS
    /// root CA, carrying the KMS's own quote when <paramref name="evidence"/> is given.
    /// </summary>
    public static X509Certificate2 CreateKmsServer(
        ECDsa key,
        IReadOnlyList<string> names,
        DateTimeOffset now,
        TimeSpan lifetime,
        X509Certificate2 rootCa,
        ECDsa rootKey,
        RaTlsEvidence? evidence)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(names);
        var leaf = new LeafCertificateRequest
        {
            Subject = names.Count > 0 ? names[0] : "localhost",
            AltNames = [.. names.Where(n => !System.Net.IPAddress.TryParse(n, out _))],
            ServerAuth = true,
            NotBefore = now.AddMinutes(-1),
            NotAfter = now + lifetime,
            Quote = evidence?.Quote,
            EventLogJson = evidence is null ? null : Encoding.UTF8.GetBytes(evidence.EventLogJson),
            Usage = KmsRpcUsage,
        };
        return WithKey(CertificateFactory.CreateLeaf(key, leaf, rootCa, rootKey), key);
    }

    /// <summary>Quotes from a runtime event log: each quote comes with the log that replays to its RTMRs.</summary>
    public static RaTlsQuoteSource FromEventLog(RuntimeEventLog eventLog)
    {
        ArgumentNullException.ThrowIfNull(eventLog);
        return async (reportData, cancellationToken) =>
        {
            var (quote, events) = await eventLog.GetQuoteWithEventsAsync(reportData, cancellationToken).ConfigureAwait(false);
            return new RaTlsEvidence(quote, TdxEventLog.Serialize(events));
        };
    }

    /// <summary>The usage string (.1.4) of a certificate, or null.</summary>
    public static string? Usage(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var bytes = CertificateFactory.ReadOctetStringExtension(certificate, RaTlsOids.CertUsage);
        return bytes is null ? null : Encoding.UTF8.GetString(bytes);
    }

    private static X509Certificate2 Issue(ECDsa key, LeafCertificateRequest leaf, (X509Certificate2 Certificate, ECDsa Key)? issuer)
    {
        if (issuer is { } ca)
        {
            return CertificateFactory.CreateLeaf(key, leaf, ca.Certificate, ca.Key);
        }

        // Self-signed: the certificate is its own issuer (trust comes from the quote, never from the chain).
        using var self = CertificateFactory.CreateRootCa(key, "PrivateMl", leaf.Subject, leaf.NotAfter);
        return CertificateFactory.CreateLeaf(key, leaf, self, key);
    }

    private static X509Certificate2 WithKey(X509Certificate2 certificate, ECDsa key)
    {
        using (certificate)
        {
            // Round-trip through PKCS#12 so the key is usable by SslStream on every platform.
            using var withKey = certificate.CopyWithPrivateKey(key);
            var pfx = withKey.Export(X509ContentType.Pkcs12);
            try
            {
                return X509CertificateLoader.LoadPkcs12(pfx, null, X509KeyStorageFlags.Exportable);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(pfx);
            }
        }
    }
}
