using System.Formats.Asn1;

namespace PrivateMl.Tee.Simulator;

/// <summary>Deliberate malformations of the PCK certificate's SGX extension, for negative tests.</summary>
public sealed record SgxExtensionDefects
{
    public static SgxExtensionDefects None { get; } = new();

    /// <summary>Leave the SGX extension out of the PCK certificate altogether.</summary>
    public bool OmitExtension { get; init; }

    /// <summary>Leave the FMSPC entry (.4) out.</summary>
    public bool OmitFmspc { get; init; }

    /// <summary>Write the FMSPC with this many bytes instead of 6 (taken from the platform FMSPC, zero-extended).</summary>
    public int? FmspcLength { get; init; }

    /// <summary>Leave the PCE-ID entry (.3) out.</summary>
    public bool OmitPceId { get; init; }

    /// <summary>Leave the TCB entry (.2) out.</summary>
    public bool OmitTcb { get; init; }

    /// <summary>Append an entry with an unknown OID (.99), so the entry count is wrong.</summary>
    public bool AddUnknownEntry { get; init; }

    /// <summary>Replace the whole extension value with these bytes (e.g. not DER at all).</summary>
    public ReadOnlyMemory<byte>? RawValue { get; init; }
}

/// <summary>
/// Encodes the SGX extension (OID 1.2.840.113741.1.13.1) with the same ASN.1 shape as Intel's PCK certificates:
/// SEQUENCE OF SEQUENCE { OID, value } with PPID, TCB (16 components, PCESVN, CPUSVN), PCE-ID, FMSPC, SGX Type and,
/// for Platform-CA certificates, PlatformInstanceID and Configuration.
/// </summary>
internal static class SgxExtensionWriter
{
    public const string ExtensionOid = "1.2.840.113741.1.13.1";

    public static byte[] Encode(PckPlatformInfo platform, SgxExtensionDefects defects)
    {
        if (defects.RawValue is { } raw)
        {
            return raw.ToArray();
        }

        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            WriteOctets(writer, ".1", platform.Ppid.Span);

            if (!defects.OmitTcb)
            {
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier(ExtensionOid + ".2");
                    using (writer.PushSequence())
                    {
                        var components = platform.SgxTcbComponents.Span;
                        for (var i = 0; i < 16; i++)
                        {
                            using (writer.PushSequence())
                            {
                                writer.WriteObjectIdentifier($"{ExtensionOid}.2.{i + 1}");
                                writer.WriteInteger(components[i]);
                            }
                        }

                        using (writer.PushSequence())
                        {
                            writer.WriteObjectIdentifier(ExtensionOid + ".2.17");
                            writer.WriteInteger(platform.PceSvn);
                        }

                        WriteOctets(writer, ".2.18", components);
                    }
                }
            }

            if (!defects.OmitPceId)
            {
                WriteOctets(writer, ".3", platform.PceId.Span);
            }

            if (!defects.OmitFmspc)
            {
                var fmspc = platform.Fmspc.Span;
                if (defects.FmspcLength is { } length)
                {
                    var resized = new byte[length];
                    fmspc[..Math.Min(length, fmspc.Length)].CopyTo(resized);
                    fmspc = resized;
                }

                WriteOctets(writer, ".4", fmspc);
            }

            using (writer.PushSequence())
            {
                writer.WriteObjectIdentifier(ExtensionOid + ".5");
                writer.WriteEnumeratedValue(platform.SgxType);
            }

            if (platform.CaKind == PckCaKind.Platform)
            {
                WriteOctets(writer, ".6", platform.PlatformInstanceId.Span);
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier(ExtensionOid + ".7");
                    using (writer.PushSequence())
                    {
                        WriteBoolean(writer, ".7.1", platform.DynamicPlatform);
                        WriteBoolean(writer, ".7.2", platform.CachedKeys);
                        WriteBoolean(writer, ".7.3", platform.SmtEnabled);
                    }
                }
            }

            if (defects.AddUnknownEntry)
            {
                WriteOctets(writer, ".99", [0x00]);
            }
        }

        return writer.Encode();
    }

    private static void WriteOctets(AsnWriter writer, string suffix, ReadOnlySpan<byte> value)
    {
        using (writer.PushSequence())
        {
            writer.WriteObjectIdentifier(ExtensionOid + suffix);
            writer.WriteOctetString(value);
        }
    }

    private static void WriteBoolean(AsnWriter writer, string suffix, bool value)
    {
        using (writer.PushSequence())
        {
            writer.WriteObjectIdentifier(ExtensionOid + suffix);
            writer.WriteBoolean(value);
        }
    }
}
