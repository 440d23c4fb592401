using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>NVIDIA opaque-data TLV types (GPU numbering; NVSwitch reuses some numbers with other meanings).</summary>
public enum GpuOpaqueField : ushort
{
    CertIssuerName = 1,
    CertAuthorityKeyIdentifier = 2,
    DriverVersion = 3,
    GpuInfo = 4,
    Sku = 5,
    VbiosVersion = 6,
    ManufacturerId = 7,
    TamperDetection = 8,
    Smc = 9,
    Vpr = 10,
    Nvdec0Status = 11,
    MsrsCnt = 12,
    CprInfo = 13,
    BoardId = 14,
    ChipSku = 15,
    ChipSkuMod = 16,
    Project = 17,
    ProjectSku = 18,
    ProjectSkuMod = 19,
    Fwid = 20,
    ProtectedPcieStatus = 21,
    SwitchPdi = 22,
    FloorsweptPorts = 23,
    PositionId = 24,
    LockSwitchStatus = 25,
    GpuLinkConn = 32,
    SysEnableStatus = 33,
    OpaqueDataVersion = 34,
    ChipInfo = 35,
    FeatureFlag = 36,
}

/// <summary>
/// The decoded opaque data of a GPU report: <c>{type u16 LE, size u16 LE, data}</c> records that must consume the
/// field exactly. Unknown types are kept raw in <see cref="Fields"/> (NVSwitch reports use extra numbers).
/// </summary>
public sealed class GpuOpaqueData
{
    /// <summary>At most this many TLVs are accepted.</summary>
    public const int MaxFields = 256;

    private GpuOpaqueData(IReadOnlyDictionary<ushort, ReadOnlyMemory<byte>> fields) => Fields = fields;

    /// <summary>Every TLV by type (the last one wins if a type repeats).</summary>
    public IReadOnlyDictionary<ushort, ReadOnlyMemory<byte>> Fields { get; }

    public string? DriverVersion => Text(GpuOpaqueField.DriverVersion);
    public string? Project => Text(GpuOpaqueField.Project);
    public string? ProjectSku => Text(GpuOpaqueField.ProjectSku);
    public string? ProjectSkuMod => Text(GpuOpaqueField.ProjectSkuMod);
    public string? ChipSku => Text(GpuOpaqueField.ChipSku);
    public string? ChipSkuMod => Text(GpuOpaqueField.ChipSkuMod);
    public string? ChipInfo => Text(GpuOpaqueField.ChipInfo);
    public ReadOnlyMemory<byte>? Fwid => Get(GpuOpaqueField.Fwid);
    public byte? Nvdec0Status => Byte(GpuOpaqueField.Nvdec0Status);
    public byte? ProtectedPcieStatus => Byte(GpuOpaqueField.ProtectedPcieStatus);
    public int? OpaqueDataVersion => UInt16(GpuOpaqueField.OpaqueDataVersion);
    public int? FeatureFlag => UInt16(GpuOpaqueField.FeatureFlag);

    /// <summary>BOARD_ID as lower-case hex of the raw bytes.</summary>
    public string? BoardIdHex => Hex(GpuOpaqueField.BoardId);

    /// <summary>NVSwitch PDIs seen by this GPU, each 8 bytes rendered byte-reversed (upper-case hex).</summary>
    public IReadOnlyList<string> SwitchPdis
    {
        get
        {
            if (Get(GpuOpaqueField.SwitchPdi) is not { } v || v.Length % 8 != 0)
            {
                return [];
            }

            var list = new List<string>(v.Length / 8);
            for (var i = 0; i < v.Length; i += 8)
            {
                var pdi = v.Span.Slice(i, 8).ToArray();
                Array.Reverse(pdi);
                list.Add(Convert.ToHexString(pdi));
            }

            return list;
        }
    }

    /// <summary>
    /// VBIOS version as NVIDIA prints it: GPUs encode 8 binary bytes (<c>00 9f 00 96 01 …</c> → <c>96.00.9F.00.01</c>).
    /// Other sizes (NVSwitch ASCII) are returned as text.
    /// </summary>
    public string? VbiosVersion
    {
        get
        {
            if (Get(GpuOpaqueField.VbiosVersion) is not { } v)
            {
                return null;
            }

            var b = v.Span;
            if (b.Length == 8)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{b[3]:X2}.{b[2]:X2}.{b[1]:X2}.{b[0]:X2}.{b[4]:X2}");
            }

            return AsciiZ(b);
        }
    }

    /// <summary>The driver RIM ID for this GPU (Hopper: <c>NV_GPU_DRIVER_GH100_…</c>; Blackwell: <c>NV_GPU_CC_DRIVER_…</c>).</summary>
    public string? DriverRimId(string arch) => DriverVersion is not { } v
        ? null
        : arch == GpuArchitecture.Blackwell
            ? $"NV_GPU_CC_DRIVER_{(string.IsNullOrEmpty(ChipInfo) ? "GB100" : ChipInfo)}_{v}"
            : $"NV_GPU_DRIVER_GH100_{v}";

    /// <summary>The VBIOS RIM ID: <c>NV_GPU_VBIOS_&lt;project&gt;_&lt;project sku&gt;_&lt;chip sku&gt;_&lt;version without dots&gt;</c>.</summary>
    public string? VbiosRimId => Project is { } p && ProjectSku is { } ps && ChipSku is { } cs && VbiosVersion is { } vb
        ? $"NV_GPU_VBIOS_{p}_{ps}_{cs}_{vb.Replace(".", string.Empty, StringComparison.Ordinal).ToUpperInvariant()}"
        : null;

    /// <summary>
    /// The NVSwitch (LS10) BIOS RIM ID: <c>NV_SWITCH_BIOS_5612_0002_890_&lt;BIOS version without dots&gt;</c> (switch reports
    /// carry no project/SKU fields; NVIDIA's verifiers use these constants).
    /// </summary>
    public string? SwitchBiosRimId => VbiosVersion is { } vb
        ? $"NV_SWITCH_BIOS_5612_0002_890_{vb.Replace(".", string.Empty, StringComparison.Ordinal).ToUpperInvariant()}"
        : null;

    /// <summary>Decodes the TLVs; throws <see cref="AttestationException"/> (GpuOpaqueDataMalformed) on bad framing.</summary>
    public static GpuOpaqueData Parse(ReadOnlyMemory<byte> opaque)
    {
        var span = opaque.Span;
        var fields = new Dictionary<ushort, ReadOnlyMemory<byte>>();
        var pos = 0;
        while (pos < span.Length)
        {
            if (span.Length - pos < 4)
            {
                throw new AttestationException(ErrorCode.GpuOpaqueDataMalformed, $"opaque data: {span.Length - pos} bytes left, too few for a TLV header");
            }

            var type = BinaryPrimitives.ReadUInt16LittleEndian(span[pos..]);
            int size = BinaryPrimitives.ReadUInt16LittleEndian(span[(pos + 2)..]);
            pos += 4;
            if (size > span.Length - pos)
            {
                throw new AttestationException(ErrorCode.GpuOpaqueDataMalformed, $"opaque data: field {type} declares {size} bytes, {span.Length - pos} remain");
            }

            if (fields.Count >= MaxFields)
            {
                throw new AttestationException(ErrorCode.GpuOpaqueDataMalformed, $"opaque data: more than {MaxFields} fields");
            }

            fields[type] = opaque.Slice(pos, size);
            pos += size;
        }

        return new GpuOpaqueData(fields);
    }

    /// <summary>Encodes TLVs in the given order (used by the simulator).</summary>
    public static byte[] Encode(IEnumerable<(GpuOpaqueField Type, byte[] Data)> fields)
    {
        using var ms = new MemoryStream();
        Span<byte> header = stackalloc byte[4];
        foreach (var (type, data) in fields)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)type);
            BinaryPrimitives.WriteUInt16LittleEndian(header[2..], checked((ushort)data.Length));
            ms.Write(header);
            ms.Write(data);
        }

        return ms.ToArray();
    }

    public ReadOnlyMemory<byte>? Get(GpuOpaqueField field) => Fields.TryGetValue((ushort)field, out var v) ? (ReadOnlyMemory<byte>?)v : null;

    private string? Text(GpuOpaqueField field) => Get(field) is { } v ? AsciiZ(v.Span) : null;

    private string? Hex(GpuOpaqueField field) => Get(field) is { } v ? Convert.ToHexStringLower(v.Span) : null;

    private byte? Byte(GpuOpaqueField field) => Get(field) is { Length: >= 1 } v ? v.Span[0] : null;

    private int? UInt16(GpuOpaqueField field) => Get(field) is { } v
        ? v.Length >= 2 ? BinaryPrimitives.ReadUInt16LittleEndian(v.Span) : v.Length == 1 ? v.Span[0] : null
        : null;

    private static string AsciiZ(ReadOnlySpan<byte> b)
    {
        var end = b.IndexOf((byte)0);
        if (end >= 0)
        {
            b = b[..end];
        }

        return Encoding.ASCII.GetString(b);
    }
}

/// <summary>The architecture names used in evidence JSON.</summary>
public static class GpuArchitecture
{
    public const string Hopper = "HOPPER";
    public const string Blackwell = "BLACKWELL";
    public const string Ls10 = "LS10";

    /// <summary>Maps NVML's <c>nvmlDeviceGetArchitecture</c> value (9, 10) to the JSON name; null when unsupported.</summary>
    public static string? FromNvml(uint arch) => arch switch
    {
        9 => Hopper,
        10 => Blackwell,
        _ => null,
    };

    public static bool IsKnown(string? arch) => arch is Hopper or Blackwell or Ls10;
}
