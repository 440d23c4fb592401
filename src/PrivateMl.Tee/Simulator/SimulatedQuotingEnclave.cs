using System.Security.Cryptography;
using System.Text;
using PrivateMl.Attestation.Tdx;

namespace PrivateMl.Tee.Simulator;

/// <summary>Identity of the simulated TD quoting enclave (the values its QE report carries).</summary>
public sealed record SimulatedQeOptions
{
    /// <summary>MRSIGNER of the simulated TD_QE (32 bytes); differs from Intel's on purpose.</summary>
    public ReadOnlyMemory<byte> MrSigner { get; init; } = SHA256.HashData(Encoding.ASCII.GetBytes("PrivateMl SIMULATED TD_QE signer"));

    public ReadOnlyMemory<byte> MrEnclave { get; init; } = SHA256.HashData(Encoding.ASCII.GetBytes("PrivateMl SIMULATED TD_QE"));

    public ushort IsvProdId { get; init; } = 2;

    public ushort IsvSvn { get; init; } = 4;

    /// <summary>SGX attributes (flags u64 ‖ xfrm u64), 16 bytes; the real TD_QE value by default (no DEBUG bit).</summary>
    public ReadOnlyMemory<byte> Attributes { get; init; } = Convert.FromHexString("1500000000000000e700000000000000");

    public uint MiscSelect { get; init; }

    /// <summary>QE authentication data; 32 bytes 00..1f as in every real quote.</summary>
    public ReadOnlyMemory<byte> AuthData { get; init; } = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();

    public void Validate()
    {
        PckPlatformInfo.Require(MrSigner, 32, nameof(MrSigner));
        PckPlatformInfo.Require(MrEnclave, 32, nameof(MrEnclave));
        PckPlatformInfo.Require(Attributes, 16, nameof(Attributes));
    }
}

/// <summary>
/// The simulated quoting enclave: a P-256 attestation key, and a QE report (SGX report body) that binds that key by
/// report_data = SHA-256(attestation public key ‖ QE auth data) ‖ 32 zero bytes and is signed by the PCK key.
/// </summary>
public sealed class SimulatedQuotingEnclave : IDisposable
{
    private const string KeyFile = "attestation.key";
    private const string OptionsFile = "qe.json";

    private readonly ECDsa _attestationKey;

    private SimulatedQuotingEnclave(SimulatedQeOptions options, ECDsa attestationKey)
    {
        options.Validate();
        Options = options;
        _attestationKey = attestationKey;
        var parameters = attestationKey.ExportParameters(includePrivateParameters: false);
        AttestationPublicKey = Concat(parameters.Q.X!, parameters.Q.Y!);
    }

    public SimulatedQeOptions Options { get; }

    /// <summary>The attestation public key as it appears in quotes: x ‖ y, 64 bytes, big-endian.</summary>
    public ReadOnlyMemory<byte> AttestationPublicKey { get; }

    /// <summary>QE ID written to the first 16 bytes of the quote header's user_data.</summary>
    public ReadOnlyMemory<byte> QeId => SHA256.HashData(AttestationPublicKey.Span).AsMemory(0, 16);

    public static SimulatedQuotingEnclave Create(SimulatedQeOptions options) =>
        new(options ?? throw new ArgumentNullException(nameof(options)), ECDsa.Create(ECCurve.NamedCurves.nistP256));

    internal byte[] SignWithAttestationKey(ReadOnlySpan<byte> data) =>
        _attestationKey.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>The QE report (an SGX report body, research/tdx-dcap.md §1.3); its wire bytes are <see cref="SgxReportBody.ToBytes"/>.</summary>
    internal SgxReportBody BuildReport(PckPlatformInfo platform, QuoteDefects defects, ReadOnlySpan<byte> attestationPublicKey, ReadOnlySpan<byte> authData)
    {
        var reportData = new byte[QuoteLayout.ReportDataSize];
        SHA256.HashData(Concat(attestationPublicKey.ToArray(), authData.ToArray()), reportData.AsSpan(0, 32));
        if (defects.QeReportDataMismatch)
        {
            reportData[0] ^= 0x01;
        }

        if (defects.NonZeroQeReportDataTail)
        {
            reportData[63] = 0x01;
        }

        return new SgxReportBody
        {
            CpuSvn = platform.SgxTcbComponents,
            MiscSelect = defects.QeMiscSelect ?? Options.MiscSelect,
            Reserved1 = default,
            IsvExtProdId = default,
            Attributes = defects.QeAttributes ?? Options.Attributes,
            MrEnclave = Options.MrEnclave,
            Reserved2 = default,
            MrSigner = defects.QeMrSigner ?? Options.MrSigner,
            Reserved3 = default,
            ConfigId = default,
            IsvProdId = defects.QeIsvProdId ?? Options.IsvProdId,
            IsvSvn = defects.QeIsvSvn ?? Options.IsvSvn,
            ConfigSvn = 0,
            Reserved4 = default,
            IsvFamilyId = default,
            ReportData = reportData,
        };
    }

    public void Save(string directory)
    {
        StateFiles.EnsureDirectory(directory);
        StateFiles.WriteText(Path.Combine(directory, KeyFile), _attestationKey.ExportPkcs8PrivateKeyPem());
        StateFiles.WriteText(Path.Combine(directory, OptionsFile), SimulatorJson.SerializeQe(Options));
    }

    public static SimulatedQuotingEnclave Load(string directory)
    {
        var options = SimulatorJson.DeserializeQe(File.ReadAllText(Path.Combine(directory, OptionsFile)));
        var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(Path.Combine(directory, KeyFile)));
        return new SimulatedQuotingEnclave(options, key);
    }

    public void Dispose() => _attestationKey.Dispose();

    internal static byte[] Concat(byte[] a, byte[] b)
    {
        var result = new byte[a.Length + b.Length];
        a.CopyTo(result, 0);
        b.CopyTo(result, a.Length);
        return result;
    }
}
