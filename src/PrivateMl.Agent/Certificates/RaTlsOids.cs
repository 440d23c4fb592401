namespace PrivateMl.Agent.Certificates;

/// <summary>dstack's RA-TLS certificate extensions under Phala's PEN 62397 (dstack.md §9.3); all non-critical.</summary>
public static class RaTlsOids
{
    /// <summary>Raw TDX quote whose report_data = SHA-512("ratls-cert:" ‖ SPKI DER).</summary>
    public const string Quote = "1.3.6.1.4.1.62397.1.1";

    /// <summary>Compact JSON array of event-log entries.</summary>
    public const string EventLog = "1.3.6.1.4.1.62397.1.2";

    /// <summary>20-byte app_id.</summary>
    public const string AppId = "1.3.6.1.4.1.62397.1.3";

    /// <summary>Usage string: <c>app:custom</c>, <c>app:ca</c>, <c>kms:rpc</c>.</summary>
    public const string CertUsage = "1.3.6.1.4.1.62397.1.4";

    /// <summary>The report_data prefix that binds a quote to a certificate key.</summary>
    public const string RaTlsReportDataTag = "ratls-cert";
}
