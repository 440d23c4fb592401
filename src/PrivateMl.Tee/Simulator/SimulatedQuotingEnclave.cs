using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

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

    /// <summary>The 384-byte QE report (SGX report body, research/tdx-dcap.md §1.3).</summary>
    internal byte[] BuildReport(PckPlatformInfo platform, QuoteDefects defects, ReadOnlySpan<byte> attestationPublicKey, ReadOnlySpan<byte> authData)
    {
        var report = new byte[QuoteLayout.SgxReportBodySize];
        platform.SgxTcbComponents.Span.CopyTo(report.AsSpan(0, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(report.AsSpan(16), defects.QeMiscSelect ?? Options.MiscSelect);
        (defects.QeAttributes ?? Options.Attributes).Span.CopyTo(report.AsSpan(48, 16));
        Options.MrEnclave.Span.CopyTo(report.AsSpan(64, 32));
        (defects.QeMrSigner ?? Options.MrSigner).Span.CopyTo(report.AsSpan(128, 32));
        BinaryPrimitives.WriteUInt16LittleEndian(report.AsSpan(256), defects.QeIsvProdId ?? Options.IsvProdId);
        BinaryPrimitives.WriteUInt16LittleEndian(report.AsSpan(258), defects.QeIsvSvn ?? Options.IsvSvn);

        var hashInput = Concat(attestationPublicKey.ToArray(), authData.ToArray());
        var reportData = report.AsSpan(320, 64);
        SHA256.HashData(hashInput, reportData[..32]);
        if (defects.QeReportDataMismatch)
        {
            reportData[0] ^= 0x01;
        }

        if (defects.NonZeroQeReportDataTail)
        {
            reportData[63] = 0x01;
        }

        return report;
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
