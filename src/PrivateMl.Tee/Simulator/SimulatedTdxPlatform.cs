using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Tee.Simulator;

/// <summary>How to build a fresh <see cref="SimulatedTdxPlatform"/>.</summary>
public sealed record SimulatedPlatformOptions
{
    public SimulatedPkiOptions Pki { get; init; } = new();

    public SimulatedQeOptions QuotingEnclave { get; init; } = new();

    public TdProfile Profile { get; init; } = new();
}

/// <summary>A signed collateral item as a PCS serves it: the exact JSON text, its signature and its issuer chain.</summary>
public sealed record SignedCollateralItem(string Json, ReadOnlyMemory<byte> Signature, string IssuerChainPem);

/// <summary>Everything the simulated PCCS routes serve.</summary>
public sealed record SimulatedPccsContent
{
    /// <summary>TDX TCB info, TD_QE identity, both CRLs and their chains.</summary>
    public required DcapCollateral Collateral { get; init; }

    /// <summary>SGX TCB info (id "SGX") for the same FMSPC, or null to answer 404 on the SGX route.</summary>
    public SignedCollateralItem? SgxTcbInfo { get; init; }

    /// <summary>SGX QE identity (id "QE"), or null to answer 404 on the SGX route.</summary>
    public SignedCollateralItem? SgxQeIdentity { get; init; }

    /// <summary>The one FMSPC this PCCS knows (6 bytes).</summary>
    public required ReadOnlyMemory<byte> Fmspc { get; init; }

    public PckCaKind CaKind { get; init; } = PckCaKind.Platform;
}

/// <summary>
/// A complete software TDX platform: simulated PKI, quoting enclave and TD profile. It writes quotes in the real v4 layout
/// over any report data and RTMR3, and the collateral that verifies them (under the simulated root only).
/// </summary>
public sealed class SimulatedTdxPlatform : IDisposable
{
    private const string ProfileFile = "profile.json";

    private SimulatedTdxPlatform(SimulatedPki pki, SimulatedQuotingEnclave quotingEnclave, TdProfile profile)
    {
        profile.Validate();
        Pki = pki;
        QuotingEnclave = quotingEnclave;
        Profile = profile;
    }

    public SimulatedPki Pki { get; }

    public SimulatedQuotingEnclave QuotingEnclave { get; }

    public TdProfile Profile { get; }

    public static SimulatedTdxPlatform Create(SimulatedPlatformOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Profile.Validate();
        return new SimulatedTdxPlatform(
            SimulatedPki.Create(options.Pki, now), SimulatedQuotingEnclave.Create(options.QuotingEnclave), options.Profile);
    }

    /// <summary>True when <paramref name="directory"/> holds a saved platform.</summary>
    public static bool Exists(string directory) =>
        SimulatedPki.Exists(directory) && File.Exists(Path.Combine(directory, ProfileFile));

    public static SimulatedTdxPlatform Load(string directory) =>
        new(SimulatedPki.Load(directory), SimulatedQuotingEnclave.Load(directory),
            TdProfile.FromJson(File.ReadAllText(Path.Combine(directory, ProfileFile))));

    /// <summary>Saves keys, certificates, QE identity and profile; every file mode 0600, the directory 0700.</summary>
    public void Save(string directory)
    {
        Pki.Save(directory);
        QuotingEnclave.Save(directory);
        StateFiles.WriteText(Path.Combine(directory, ProfileFile), Profile.ToJson());
    }

    /// <summary>A TDX v4 quote over exactly <paramref name="reportData"/> (64 bytes) with the given RTMR3 (48 bytes).</summary>
    public byte[] CreateQuote(ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> rtmr3, QuoteDefects? defects = null)
    {
        if (reportData.Length != 64)
        {
            throw new ArgumentException($"report data must be 64 bytes, got {reportData.Length}", nameof(reportData));
        }

        if (rtmr3.Length != 48)
        {
            throw new ArgumentException($"RTMR3 must be 48 bytes, got {rtmr3.Length}", nameof(rtmr3));
        }

        return SimulatedQuoteWriter.Write(Pki, QuotingEnclave, Profile, rtmr3, reportData, defects ?? QuoteDefects.None);
    }

    /// <summary>Collateral (TCB info, QE identity, CRLs) matching this platform, issued around <paramref name="now"/>.</summary>
    public DcapCollateral CreateCollateral(DateTimeOffset now, SimulatedCollateralOptions? options = null) =>
        SimulatedCollateralBuilder.Build(Pki, QuotingEnclave, Profile, options ?? SimulatedCollateralOptions.Default, now);

    /// <summary>What the simulated PCCS serves: the TDX collateral plus SGX-flavoured TCB info and QE identity.</summary>
    public SimulatedPccsContent CreatePccsContent(DateTimeOffset now, SimulatedCollateralOptions? options = null)
    {
        options ??= SimulatedCollateralOptions.Default;
        var collateral = CreateCollateral(now, options);
        var issued = SimulatedPki.TruncateToSeconds(now - options.Backdate);
        var next = issued + options.Validity;
        var sgxTcb = SimulatedCollateralBuilder.TcbInfoJson(
            Pki.Platform, Profile, options.TcbInfo with { Id = "SGX" }, issued, next, sgxShape: true);
        var sgxQe = SimulatedCollateralBuilder.QeIdentityJson(
            QuotingEnclave.Options with { IsvProdId = 1 }, options.QeIdentity with { Id = "QE" }, issued, next);
        return new SimulatedPccsContent
        {
            Collateral = collateral,
            SgxTcbInfo = new SignedCollateralItem(sgxTcb, Pki.SignWithTcbSigningKey(System.Text.Encoding.UTF8.GetBytes(sgxTcb)), Pki.TcbSigningChainPem),
            SgxQeIdentity = new SignedCollateralItem(sgxQe, Pki.SignWithTcbSigningKey(System.Text.Encoding.UTF8.GetBytes(sgxQe)), Pki.TcbSigningChainPem),
            Fmspc = Pki.Platform.Fmspc,
            CaKind = Pki.Platform.CaKind,
        };
    }

    public void Dispose()
    {
        Pki.Dispose();
        QuotingEnclave.Dispose();
    }
}
