using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// The static part of a simulated TD report body (research/tdx-dcap.md §1.4): everything except RTMR3 and report_data,
/// which the device supplies per quote. Stored as a JSON profile with lower-case hex values in wire order, e.g.
/// <c>{"mr_td":"…","rtmr0":"…","td_attributes":"0000001000000000",…}</c>.
/// </summary>
public sealed record TdProfile
{
    private static readonly (string Name, int Length)[] Fields =
    [
        ("tee_tcb_svn", 16), ("mr_seam", 48), ("mr_signer_seam", 48), ("seam_attributes", 8), ("td_attributes", 8),
        ("xfam", 8), ("mr_td", 48), ("mr_config_id", 48), ("mr_owner", 48), ("mr_owner_config", 48),
        ("rtmr0", 48), ("rtmr1", 48), ("rtmr2", 48),
    ];

    /// <summary>TD attribute bit 0: the TD is under debug.</summary>
    public const ulong DebugAttribute = 1UL << 0;

    /// <summary>TD attribute bit 28: SEPT_VE_DISABLE (set in every real sample).</summary>
    public const ulong SeptVeDisableAttribute = 1UL << 28;

    /// <summary>TEE_TCB_SVN: module SVN 6, module major version 1, late microcode 3 (like the real tdx_quote).</summary>
    public ReadOnlyMemory<byte> TeeTcbSvn { get; init; } = Convert.FromHexString("06010300000000000000000000000000");

    public ReadOnlyMemory<byte> MrSeam { get; init; } = Label384("MR_SEAM");

    /// <summary>All zero for Intel-signed TDX modules.</summary>
    public ReadOnlyMemory<byte> MrSignerSeam { get; init; } = new byte[48];

    public ReadOnlyMemory<byte> SeamAttributes { get; init; } = new byte[8];

    /// <summary>TD attributes as the 8 wire bytes (little-endian u64); default SEPT_VE_DISABLE only.</summary>
    public ReadOnlyMemory<byte> TdAttributes { get; init; } = Convert.FromHexString("0000001000000000");

    /// <summary>XFAM as the 8 wire bytes; default FP, SSE, AVX, AVX-512, PKRU, AMX as in the real samples.</summary>
    public ReadOnlyMemory<byte> Xfam { get; init; } = Convert.FromHexString("e702060000000000");

    public ReadOnlyMemory<byte> MrTd { get; init; } = Label384("MRTD");

    public ReadOnlyMemory<byte> MrConfigId { get; init; } = new byte[48];

    public ReadOnlyMemory<byte> MrOwner { get; init; } = new byte[48];

    public ReadOnlyMemory<byte> MrOwnerConfig { get; init; } = new byte[48];

    public ReadOnlyMemory<byte> Rtmr0 { get; init; } = Label384("RTMR0");

    public ReadOnlyMemory<byte> Rtmr1 { get; init; } = Label384("RTMR1");

    public ReadOnlyMemory<byte> Rtmr2 { get; init; } = Label384("RTMR2");

    /// <summary>A copy with the DEBUG attribute bit set (for policy tests).</summary>
    public TdProfile WithDebug()
    {
        var attributes = TdAttributes.ToArray();
        attributes[0] |= (byte)DebugAttribute;
        return this with { TdAttributes = attributes };
    }

    public void Validate()
    {
        foreach (var (name, length) in Fields)
        {
            PckPlatformInfo.Require(Get(name), length, name);
        }
    }

    public string ToJson() => SimulatorJson.Write(writer =>
    {
        foreach (var (name, _) in Fields)
        {
            writer.WriteString(name, Convert.ToHexStringLower(Get(name).Span));
        }
    });

    /// <summary>
    /// Reads a profile. Absent fields keep their defaults; unknown fields, non-hex values and wrong lengths are
    /// rejected with <see cref="FormatException"/>.
    /// </summary>
    public static TdProfile FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new FormatException("TD profile is not valid JSON: " + ex.Message, ex);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException("TD profile must be a JSON object");
            }

            var profile = new TdProfile();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                var field = Array.Find(Fields, f => f.Name == property.Name);
                if (field.Name is null)
                {
                    throw new FormatException($"TD profile: unknown field '{property.Name}'");
                }

                if (property.Value.ValueKind != JsonValueKind.String)
                {
                    throw new FormatException($"TD profile: '{property.Name}' must be a hex string");
                }

                byte[] value;
                try
                {
                    value = Convert.FromHexString(property.Value.GetString()!);
                }
                catch (FormatException ex)
                {
                    throw new FormatException($"TD profile: '{property.Name}' is not hex", ex);
                }

                if (value.Length != field.Length)
                {
                    throw new FormatException($"TD profile: '{property.Name}' must be {field.Length} bytes, got {value.Length}");
                }

                profile = profile.Set(property.Name, value);
            }

            return profile;
        }
    }

    private ReadOnlyMemory<byte> Get(string name) => name switch
    {
        "tee_tcb_svn" => TeeTcbSvn,
        "mr_seam" => MrSeam,
        "mr_signer_seam" => MrSignerSeam,
        "seam_attributes" => SeamAttributes,
        "td_attributes" => TdAttributes,
        "xfam" => Xfam,
        "mr_td" => MrTd,
        "mr_config_id" => MrConfigId,
        "mr_owner" => MrOwner,
        "mr_owner_config" => MrOwnerConfig,
        "rtmr0" => Rtmr0,
        "rtmr1" => Rtmr1,
        "rtmr2" => Rtmr2,
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private TdProfile Set(string name, byte[] value) => name switch
    {
        "tee_tcb_svn" => this with { TeeTcbSvn = value },
        "mr_seam" => this with { MrSeam = value },
        "mr_signer_seam" => this with { MrSignerSeam = value },
        "seam_attributes" => this with { SeamAttributes = value },
        "td_attributes" => this with { TdAttributes = value },
        "xfam" => this with { Xfam = value },
        "mr_td" => this with { MrTd = value },
        "mr_config_id" => this with { MrConfigId = value },
        "mr_owner" => this with { MrOwner = value },
        "mr_owner_config" => this with { MrOwnerConfig = value },
        "rtmr0" => this with { Rtmr0 = value },
        "rtmr1" => this with { Rtmr1 = value },
        "rtmr2" => this with { Rtmr2 = value },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static byte[] Label384(string label) => SHA384.HashData(Encoding.ASCII.GetBytes("PrivateMl SIMULATED " + label));
}
