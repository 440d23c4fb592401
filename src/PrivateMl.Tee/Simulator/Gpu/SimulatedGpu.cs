using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Trust;

namespace PrivateMl.Tee.Simulator.Gpu;

/// <summary>
/// SIMULATED — a software GPU that emits evidence in NVIDIA's exact format (SPDM 1.1 GET_MEASUREMENTS, opaque data,
/// 64 SHA-384 measurement blocks, FWID in the leaf certificate) signed along a chain
/// <c>SIMULATED … FMC LF → SIMULATED … BROM → SIMULATED GPU Device Identity CA</c>. The root's private key is in this
/// file, so the evidence proves nothing; verifiers accept it only with AllowSimulated.
/// </summary>
public sealed class SimulatedGpu : IDisposable
{
    /// <summary>The SIMULATED root key (PKCS#8). Public on purpose: anybody can forge evidence under this root.</summary>
    public const string SimulatedRootKeyPem = """
        -----BEGIN PRIVATE KEY-----
        MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAU9m/LW/RfU/bU0KNp
        8qVidbjmmAhFkKzvp2KDriPR+ipFudIJ/bBe9GU+jUA+rQyhZANiAAT3I6gO6qof
        IBJlIeukXZmhFJMXlvCBh76R2P00V10nOgLoeBG3Fa2aA7ytxrPEl8syurBTf3zP
        joBgHl5u5qvupWtJv0LijW17Yt1Wes4U9oACSN1vDsaFLbe+Ksc+Tpk=
        -----END PRIVATE KEY-----
        """;

    private static readonly DateTimeOffset NotBefore = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset NotAfter = new(9999, 12, 31, 23, 59, 59, TimeSpan.Zero);

    private readonly ECDsa _deviceCaKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly ECDsa _attestationKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
    private readonly byte[] _chainPem;

    public SimulatedGpu(int index, SimulatedGpuFirmware? firmware = null)
    {
        Index = index;
        Firmware = firmware ?? SimulatedGpuFirmware.Default;
        Measurements = Firmware.Measurements();
        Fwid = SHA384.HashData(Encoding.ASCII.GetBytes($"SIMULATED FMC firmware {Firmware.VbiosVersion}"));
        using var rootKey = ECDsa.Create();
        rootKey.ImportFromPem(SimulatedRootKeyPem);
        using var root = X509CertificateLoader.LoadCertificate(NvidiaSimulatedRootCa.Der);
        var serial = RandomNumberGenerator.GetBytes(20);
        serial[0] &= 0x7F;
        serial[0] |= 0x01;

        var caReq = new CertificateRequest(new X500DistinguishedName($"CN=SIMULATED GH100 A01 GSP BROM, SERIALNUMBER={Convert.ToHexString(serial[..9])}"), _deviceCaKey, HashAlgorithmName.SHA384);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        caReq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caReq.PublicKey, false));
        caReq.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var ca = caReq.Create(root.SubjectName, X509SignatureGenerator.CreateForECDsa(rootKey), NotBefore, NotAfter, serial[..9]);

        var leafReq = new CertificateRequest(new X500DistinguishedName($"CN=SIMULATED GH100 A01 GSP FMC LF, SERIALNUMBER={Convert.ToHexString(serial)}"), _attestationKey, HashAlgorithmName.SHA384);
        leafReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        leafReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        leafReq.CertificateExtensions.Add(new X509Extension(GpuCertificateChain.FwidOidHopper, FwidExtension(Fwid), false));
        leafReq.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var leaf = leafReq.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(_deviceCaKey), NotBefore, NotAfter, serial);
        _chainPem = Encoding.ASCII.GetBytes(PemEncoding.WriteString("CERTIFICATE", leaf.RawData) + "\n" + PemEncoding.WriteString("CERTIFICATE", ca.RawData) + "\n" + PemEncoding.WriteString("CERTIFICATE", root.RawData) + "\n");
    }

    public int Index { get; }

    public SimulatedGpuFirmware Firmware { get; }

    /// <summary>The 64 measurement values this GPU reports (SPDM index = position + 1).</summary>
    public IReadOnlyList<byte[]> Measurements { get; }

    public byte[] Fwid { get; }

    /// <summary>The PEM chain, leaf first, as NVML would return it.</summary>
    public ReadOnlySpan<byte> CertificateChainPem => _chainPem;

    /// <summary>One attestation report over <paramref name="nonce"/> (32 bytes), as <c>nvmlDeviceGetConfComputeGpuAttestationReport</c>.</summary>
    public byte[] AttestationReport(ReadOnlySpan<byte> nonce)
    {
        var opaque = GpuOpaqueData.Encode(
        [
            (GpuOpaqueField.VbiosVersion, Firmware.VbiosBytes()),
            (GpuOpaqueField.BoardId, [0x00, 0x53, 0x00, 0x00]),
            (GpuOpaqueField.ChipSku, Encoding.ASCII.GetBytes(Firmware.ChipSku + "\0")),
            (GpuOpaqueField.ChipSkuMod, "0\0"u8.ToArray()),
            (GpuOpaqueField.Project, Encoding.ASCII.GetBytes(Firmware.Project + "\0")),
            (GpuOpaqueField.ProjectSku, Encoding.ASCII.GetBytes(Firmware.ProjectSku + "\0")),
            (GpuOpaqueField.ProjectSkuMod, [0, 0]),
            (GpuOpaqueField.DriverVersion, Encoding.ASCII.GetBytes(Firmware.DriverVersion + "\0")),
            (GpuOpaqueField.GpuInfo, [0x80, 0x01, 0, 0, 0, 0, 0, 0]),
            (GpuOpaqueField.Nvdec0Status, [0x55]),
            (GpuOpaqueField.Fwid, Fwid),
            (GpuOpaqueField.ProtectedPcieStatus, [0x55]),
            (GpuOpaqueField.OpaqueDataVersion, [1, 0]),
            (GpuOpaqueField.FeatureFlag, [0, 0]),
        ]);
        return SpdmReportWriter.Write(nonce, Measurements, RandomNumberGenerator.GetBytes(32), opaque,
            signed => _attestationKey.SignData(signed, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    public void Dispose()
    {
        _deviceCaKey.Dispose();
        _attestationKey.Dispose();
    }

    private static byte[] FwidExtension(byte[] fwid)
    {
        // SEQUENCE { SEQUENCE { OID sha384, OCTET STRING fwid } }: the FWID is the last 48 bytes, as on real GPUs.
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            w.WriteInteger(1);
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier("2.16.840.1.101.3.4.2.2");
                w.WriteOctetString(fwid);
            }
        }

        return w.Encode();
    }
}

/// <summary>What a simulated GPU claims to run. Measurements derive from these strings, so RIMs can be built to match.</summary>
public sealed record SimulatedGpuFirmware(string DriverVersion, string VbiosVersion, string Project, string ProjectSku, string ChipSku)
{
    public static SimulatedGpuFirmware Default { get; } = new("580.159.04", "96.00.DA.00.0C", "SIM0", "0000", "000");

    /// <summary>VBIOS indices (0-based) and driver indices, as on real GH100 RIMs.</summary>
    public static IReadOnlyList<int> VbiosIndices { get; } = [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12];

    public static IReadOnlyList<int> DriverIndices { get; } = [7, .. Enumerable.Range(21, 20)];

    public byte[] VbiosBytes()
    {
        var p = VbiosVersion.Split('.').Select(x => Convert.ToByte(x, 16)).ToArray();
        return p.Length == 5 ? [p[3], p[2], p[1], p[0], p[4], 0, 0, 0] : throw new FormatException("VBIOS version must be five hex groups");
    }

    public byte[][] Measurements() =>
        Enumerable.Range(0, 64).Select(i => SHA384.HashData(Encoding.ASCII.GetBytes(
            DriverIndices.Contains(i) ? $"SIMULATED driver {DriverVersion} index {i}" : $"SIMULATED vbios {VbiosVersion} index {i}"))).ToArray();
}
