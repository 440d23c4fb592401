using System.Security.Cryptography.X509Certificates;

namespace PrivateMl.Testing;

/// <summary>X.509 chain building in tests: only the given root is trusted, intermediates come from the caller, no revocation.</summary>
public static class CustomRootChain
{
    /// <summary>Builds <paramref name="leaf"/> up to <paramref name="root"/>; <c>Status</c> joins the chain status texts (for assertion messages).</summary>
    public static (bool Built, string Status) Build(
        X509Certificate2 leaf, X509Certificate2 root, IEnumerable<X509Certificate2> intermediates, DateTimeOffset? at = null)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(intermediates);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.ExtraStore.AddRange(intermediates.ToArray());
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (at is { } time)
        {
            chain.ChainPolicy.VerificationTime = time.UtcDateTime;
        }

        var built = chain.Build(leaf);
        return (built, string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation)));
    }
}
