using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Tee.Tests.Simulator;

/// <summary>
/// An independent reader of TDX v4 quote bytes (offsets from research/tdx-dcap.md §1), used to check the simulator's
/// output without the project's own parser.
/// </summary>
internal sealed class QuoteBytes
{
    public QuoteBytes(byte[] quote)
    {
        Raw = quote;
        SignatureDataLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(quote.AsSpan(632));
        var s = quote.AsSpan(636, SignatureDataLength);
        QuoteSignature = s[..64].ToArray();
        AttestationKey = s[64..128].ToArray();
        OuterType = BinaryPrimitives.ReadUInt16LittleEndian(s[128..]);
        OuterSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[130..]);
        var q = s.Slice(134, OuterSize);
        QeReport = q[..384].ToArray();
        QeReportSignature = q[384..448].ToArray();
        var n = BinaryPrimitives.ReadUInt16LittleEndian(q[448..]);
        AuthData = q.Slice(450, n).ToArray();
        InnerType = BinaryPrimitives.ReadUInt16LittleEndian(q[(450 + n)..]);
        InnerSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(q[(452 + n)..]);
        CertificationData = q.Slice(456 + n, InnerSize).ToArray();
        TrailingLength = quote.Length - 636 - SignatureDataLength;
    }

    public byte[] Raw { get; }

    public ushort Version => BinaryPrimitives.ReadUInt16LittleEndian(Raw);

    public ushort AttestationKeyType => BinaryPrimitives.ReadUInt16LittleEndian(Raw.AsSpan(2));

    public uint TeeType => BinaryPrimitives.ReadUInt32LittleEndian(Raw.AsSpan(4));

    public byte[] QeVendorId => Raw[12..28];

    public byte[] Body => Raw[48..632];

    public byte[] ReportData => Raw[568..632];

    public byte[] Rtmr(int index) => Raw[(376 + (48 * index))..(424 + (48 * index))];

    public int SignatureDataLength { get; }

    public byte[] QuoteSignature { get; }

    public byte[] AttestationKey { get; }

    public ushort OuterType { get; }

    public int OuterSize { get; }

    public byte[] QeReport { get; }

    public byte[] QeReportSignature { get; }

    public byte[] AuthData { get; }

    public ushort InnerType { get; }

    public int InnerSize { get; }

    public byte[] CertificationData { get; }

    public int TrailingLength { get; }

    public X509Certificate2[] PckChain()
    {
        var text = Encoding.ASCII.GetString(CertificationData).TrimEnd('\0');
        var collection = new X509Certificate2Collection();
        collection.ImportFromPem(text);
        return [.. collection];
    }

    public bool QuoteSignatureVerifies()
    {
        using var key = ECDsa.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = AttestationKey[..32], Y = AttestationKey[32..] },
        });
        return key.VerifyData(Raw.AsSpan(0, 632), QuoteSignature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    public bool QeReportSignatureVerifies(X509Certificate2 pck)
    {
        using var key = pck.GetECDsaPublicKey()!;
        return key.VerifyData(QeReport, QeReportSignature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    public bool QeReportDataBindsAttestationKey()
    {
        var expected = SHA256.HashData([.. AttestationKey, .. AuthData]);
        return QeReport.AsSpan(320, 32).SequenceEqual(expected) && QeReport.AsSpan(352, 32).IndexOfAnyExcept((byte)0) < 0;
    }
}

internal static class Simulators
{
    public static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static SimulatedTdxPlatform Platform(SimulatedPlatformOptions? options = null) =>
        SimulatedTdxPlatform.Create(options ?? new SimulatedPlatformOptions(), Now);

    public static byte[] ReportData(byte seed) => Enumerable.Range(0, 64).Select(i => (byte)(i + seed)).ToArray();

    public static string TempDirectory()
    {
        var path = Path.Combine(Path.GetTempPath(), "privateml-sim-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        return path;
    }
}
