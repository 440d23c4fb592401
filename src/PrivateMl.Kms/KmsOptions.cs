using PrivateMl.Agent.Certificates;
using PrivateMl.Kms.Policy;

namespace PrivateMl.Kms;

/// <summary>
/// Settings of the KMS (<c>privateml kms serve</c>). Validated when the host is built (<see cref="Validate"/>).
/// </summary>
public sealed class KmsOptions
{
    /// <summary>Directory of the root keys and epochs (files 0600).</summary>
    public string StateDirectory { get; set; } = "/var/lib/privateml/kms";

    /// <summary>HTTPS listener (dstack's KMS listens on port 8000; port 0 picks a free one).</summary>
    public Uri ListenUrl { get; set; } = new("https://127.0.0.1:8000");

    /// <summary>Names the server certificate carries (DNS SANs; the first is its subject).</summary>
    public IReadOnlyList<string> ServerNames { get; set; } = ["localhost"];

    /// <summary>Who gets keys.</summary>
    public KmsPolicy Policy { get; set; } = KmsPolicy.Default;

    /// <summary>True when the KMS trusts a simulator's root instead of Intel's (everything it logs says SIMULATED).</summary>
    public bool Simulated { get; set; }

    /// <summary>
    /// Where this KMS's own quotes come from (it runs in a TD): they go into its server certificate and
    /// <c>GetMeta.bootstrap_info</c>, and into the client certificate with which it onboards from another KMS. Null:
    /// the server certificate carries no quote and onboarding is impossible.
    /// </summary>
    public RaTlsQuoteSource? QuoteSource { get; set; }

    /// <summary>Largest request body accepted.</summary>
    public int MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(StateDirectory))
        {
            throw new ArgumentException("a state directory is required");
        }

        if (ListenUrl.Scheme != Uri.UriSchemeHttps || ListenUrl.Port < 0)
        {
            throw new ArgumentException($"the KMS listens on https://HOST:PORT (got {ListenUrl})");
        }

        if (MaxRequestBodyBytes is < 1024 or > 64 * 1024 * 1024)
        {
            throw new ArgumentException("MaxRequestBodyBytes must be between 1 KiB and 64 MiB");
        }

        ArgumentNullException.ThrowIfNull(Policy);
    }
}
