namespace PrivateMl.Tee.Simulator;

/// <summary>
/// Deliberate defects of one simulated certificate, for negative tests. <see cref="None"/> gives a certificate shaped
/// like Intel's.
/// </summary>
public sealed record CertificateDefects
{
    public static CertificateDefects None { get; } = new();

    /// <summary>Overrides notBefore (e.g. in the future: not yet valid).</summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>Overrides notAfter (e.g. in the past: expired).</summary>
    public DateTimeOffset? NotAfter { get; init; }

    /// <summary>Flips one bit of the signature value (the DER stays well-formed).</summary>
    public bool CorruptSignature { get; init; }

    /// <summary>Keeps the right issuer name but signs with a key unrelated to the issuer's.</summary>
    public bool SignedByUnrelatedKey { get; init; }

    /// <summary>Overrides the CA flag of Basic Constraints (e.g. true on a leaf, false on a CA).</summary>
    public bool? CertificateAuthority { get; init; }

    /// <summary>Overrides the subject common name.</summary>
    public string? SubjectCommonName { get; init; }

    /// <summary>Overrides the issuer common name, so issuer ≠ parent subject.</summary>
    public string? IssuerCommonName { get; init; }
}

/// <summary>How to build a <see cref="SimulatedPki"/>. Every certificate is P-256 / ECDSA-SHA256 like Intel's.</summary>
public sealed record SimulatedPkiOptions
{
    /// <summary>Base URL written into CRL distribution points (the simulated PCCS serves these paths).</summary>
    public string CrlBaseUrl { get; init; } = "https://pccs.simulated.privateml.invalid";

    public PckPlatformInfo Platform { get; init; } = new();

    public TimeSpan RootValidity { get; init; } = TimeSpan.FromDays(365 * 25);

    public TimeSpan CaValidity { get; init; } = TimeSpan.FromDays(365 * 15);

    public TimeSpan LeafValidity { get; init; } = TimeSpan.FromDays(365 * 7);

    /// <summary>How far before "now" every notBefore lies (tolerates verifier clocks that lag a little).</summary>
    public TimeSpan Backdate { get; init; } = TimeSpan.FromDays(1);

    public CertificateDefects Root { get; init; } = CertificateDefects.None;

    public CertificateDefects PckCa { get; init; } = CertificateDefects.None;

    public CertificateDefects PckLeaf { get; init; } = CertificateDefects.None;

    public CertificateDefects TcbSigning { get; init; } = CertificateDefects.None;

    public SgxExtensionDefects SgxExtension { get; init; } = SgxExtensionDefects.None;
}

/// <summary>How to build one CRL (root CA CRL or PCK CRL), including deliberate defects.</summary>
public sealed record SimulatedCrlOptions
{
    public static SimulatedCrlOptions Default { get; } = new();

    /// <summary>thisUpdate; defaults to the collateral issue time.</summary>
    public DateTimeOffset? ThisUpdate { get; init; }

    /// <summary>nextUpdate; defaults to thisUpdate + the collateral validity.</summary>
    public DateTimeOffset? NextUpdate { get; init; }

    /// <summary>Serial numbers (big-endian, as in the certificate) listed as revoked.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> RevokedSerials { get; init; } = [];

    /// <summary>Flips one bit of the CRL signature.</summary>
    public bool CorruptSignature { get; init; }

    /// <summary>Signs with a key unrelated to the issuer's.</summary>
    public bool SignedByUnrelatedKey { get; init; }

    /// <summary>Overrides the issuer common name.</summary>
    public string? IssuerCommonName { get; init; }
}
