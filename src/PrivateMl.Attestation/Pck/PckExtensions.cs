using System.Formats.Asn1;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Pck;

/// <summary>Which Intel CA issued a PCK certificate; it decides which PCK CRL applies.</summary>
public enum PckCaType
{
    Processor,
    Platform,
}

/// <summary>SGX Type (OID .5).</summary>
public enum SgxType
{
    Standard = 0,
    Scalable = 1,
    ScalableWithIntegrity = 2,
}

/// <summary>Platform-CA PCK certificates only: the Configuration sequence (OID .7). Absent booleans are null.</summary>
public sealed record PckPlatformConfiguration(bool? DynamicPlatform, bool? CachedKeys, bool? SmtEnabled);

/// <summary>
/// The SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): PPID, the 16 SGX TCB component SVNs, PCESVN,
/// CPUSVN, PCE-ID, FMSPC, SGX type and, for Platform-CA certificates, PlatformInstanceID and Configuration.
/// </summary>
public sealed record PckExtensions
{
    public const string SgxExtensionOid = "1.2.840.113741.1.13.1";

    public required ReadOnlyMemory<byte> Ppid { get; init; }

    /// <summary>SGX TCB Comp01..Comp16 SVN (OIDs .2.1 … .2.16), each 0..255.</summary>
    public required IReadOnlyList<int> TcbComponents { get; init; }

    public required int PceSvn { get; init; }

    public required ReadOnlyMemory<byte> CpuSvn { get; init; }

    /// <summary>2 bytes.</summary>
    public required ReadOnlyMemory<byte> PceId { get; init; }

    /// <summary>6 bytes.</summary>
    public required ReadOnlyMemory<byte> Fmspc { get; init; }

    public required SgxType SgxType { get; init; }

    public ReadOnlyMemory<byte>? PlatformInstanceId { get; init; }

    public PckPlatformConfiguration? Configuration { get; init; }

    /// <summary>Number of top-level entries (5 for Processor-CA, 7 for Platform-CA certificates).</summary>
    public required int EntryCount { get; init; }

    /// <summary>FMSPC as lower-case hex.</summary>
    public string FmspcHex => Convert.ToHexStringLower(Fmspc.Span);

    /// <summary>PCE-ID as lower-case hex.</summary>
    public string PceIdHex => Convert.ToHexStringLower(PceId.Span);

    /// <summary>Parses the DER value of the SGX extension; anything malformed raises <see cref="ErrorCode.PckExtensionMalformed"/>.</summary>
    public static PckExtensions Parse(ReadOnlyMemory<byte> extensionValue)
    {
        try
        {
            return ParseCore(extensionValue);
        }
        catch (Exception ex) when (ex is AsnContentException or ArgumentException or InvalidOperationException or OverflowException)
        {
            throw new AttestationException(ErrorCode.PckExtensionMalformed, "the PCK certificate's SGX extension is not valid DER: " + ex.Message, ex);
        }
    }

    private static PckExtensions ParseCore(ReadOnlyMemory<byte> value)
    {
        const string Root = SgxExtensionOid + ".";
        var reader = new AsnReader(value, AsnEncodingRules.DER);
        var seq = reader.ReadSequence();
        reader.ThrowIfNotEmpty();

        ReadOnlyMemory<byte>? ppid = null, cpuSvn = null, pceId = null, fmspc = null, platformInstanceId = null;
        int[]? components = null;
        int? pceSvn = null;
        SgxType? sgxType = null;
        PckPlatformConfiguration? configuration = null;
        var count = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);

        while (seq.HasData)
        {
            var entry = seq.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            count++;
            if (!seen.Add(oid))
            {
                throw Malformed($"SGX extension entry {oid} appears twice");
            }

            switch (oid[Root.Length..])
            {
                case "1":
                    ppid = Octets(entry, 16, "PPID");
                    break;
                case "2":
                    (components, pceSvn, cpuSvn) = ReadTcb(entry.ReadSequence());
                    break;
                case "3":
                    pceId = Octets(entry, 2, "PCE-ID");
                    break;
                case "4":
                    fmspc = Octets(entry, 6, "FMSPC");
                    break;
                case "5":
                    var type = entry.ReadEnumeratedBytes();
                    if (type.Length != 1 || type.Span[0] > 2)
                    {
                        throw Malformed("SGX Type is not 0, 1 or 2");
                    }

                    sgxType = (SgxType)type.Span[0];
                    break;
                case "6":
                    platformInstanceId = Octets(entry, 16, "PlatformInstanceID");
                    break;
                case "7":
                    configuration = ReadConfiguration(entry.ReadSequence());
                    break;
                default:
                    throw Malformed($"unknown SGX extension entry {oid}");
            }

            entry.ThrowIfNotEmpty();
        }

        if (count is not (5 or 7))
        {
            throw Malformed($"the SGX extension has {count} entries; 5 (Processor CA) or 7 (Platform CA) are expected");
        }

        if (count == 7 && (platformInstanceId is null || configuration is null))
        {
            throw Malformed("a 7-entry SGX extension must carry PlatformInstanceID and Configuration");
        }

        return new PckExtensions
        {
            Ppid = ppid ?? throw Malformed("PPID is missing"),
            TcbComponents = components ?? throw Malformed("TCB is missing"),
            PceSvn = pceSvn ?? throw Malformed("PCESVN is missing"),
            CpuSvn = cpuSvn ?? throw Malformed("CPUSVN is missing"),
            PceId = pceId ?? throw Malformed("PCE-ID is missing"),
            Fmspc = fmspc ?? throw Malformed("FMSPC is missing"),
            SgxType = sgxType ?? throw Malformed("SGX Type is missing"),
            PlatformInstanceId = platformInstanceId,
            Configuration = configuration,
            EntryCount = count,
        };
    }

    private static (int[] Components, int PceSvn, ReadOnlyMemory<byte> CpuSvn) ReadTcb(AsnReader tcb)
    {
        const string Prefix = SgxExtensionOid + ".2.";
        var components = new int[16];
        var have = new bool[18];
        int pceSvn = 0;
        ReadOnlyMemory<byte> cpuSvn = default;
        while (tcb.HasData)
        {
            var entry = tcb.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            if (!oid.StartsWith(Prefix, StringComparison.Ordinal) || !int.TryParse(oid.AsSpan(Prefix.Length), out var n) || n is < 1 or > 18)
            {
                throw Malformed($"unknown TCB entry {oid}");
            }

            if (have[n - 1])
            {
                throw Malformed($"TCB entry {oid} appears twice");
            }

            have[n - 1] = true;
            if (n <= 16)
            {
                components[n - 1] = ReadBoundedInteger(entry, 255, $"SGX TCB component {n}");
            }
            else if (n == 17)
            {
                pceSvn = ReadBoundedInteger(entry, 65535, "PCESVN");
            }
            else
            {
                cpuSvn = Octets(entry, 16, "CPUSVN");
            }

            entry.ThrowIfNotEmpty();
        }

        if (Array.IndexOf(have, false) is var missing and >= 0)
        {
            throw Malformed($"TCB entry {Prefix}{missing + 1} is missing");
        }

        return (components, pceSvn, cpuSvn);
    }

    private static PckPlatformConfiguration ReadConfiguration(AsnReader config)
    {
        const string Prefix = SgxExtensionOid + ".7.";
        bool? dynamicPlatform = null, cachedKeys = null, smt = null;
        while (config.HasData)
        {
            var entry = config.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            var value = entry.ReadBoolean();
            entry.ThrowIfNotEmpty();
            switch (oid.StartsWith(Prefix, StringComparison.Ordinal) ? oid[Prefix.Length..] : oid)
            {
                case "1" when dynamicPlatform is null:
                    dynamicPlatform = value;
                    break;
                case "2" when cachedKeys is null:
                    cachedKeys = value;
                    break;
                case "3" when smt is null:
                    smt = value;
                    break;
                default:
                    throw Malformed($"unexpected or repeated Configuration entry {oid}");
            }
        }

        return new PckPlatformConfiguration(dynamicPlatform, cachedKeys, smt);
    }

    private static int ReadBoundedInteger(AsnReader reader, int max, string what)
    {
        if (!reader.TryReadInt32(out var value) || value < 0 || value > max)
        {
            throw Malformed($"{what} is not an integer in 0..{max}");
        }

        return value;
    }

    private static ReadOnlyMemory<byte> Octets(AsnReader reader, int length, string what)
    {
        var bytes = reader.ReadOctetString();
        if (bytes.Length != length)
        {
            throw Malformed($"{what} has {bytes.Length} bytes; {length} expected");
        }

        return bytes;
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.PckExtensionMalformed, message);
}
