using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using PrivateMl.Attestation.Tdx.Collateral;

namespace PrivateMl.Tee.Simulator;

/// <summary>
/// Builds collateral matching a simulated platform: TCB info v3 ("TDX") and QE identity v2 ("TD_QE") as compact JSON in
/// Intel's key order, each signed (ECDSA P-256, 64-byte r‖s) over its exact bytes by the TCB Signing key, plus the root
/// CA CRL and PCK CRL (DER), as <see cref="DcapCollateral"/>.
/// </summary>
internal static class SimulatedCollateralBuilder
{
    private static readonly (string? Category, string? Type)[] SgxLabels =
    [
        ("BIOS", "Early Microcode Update"), ("OS/VMM", "SGX Late Microcode Update"), ("OS/VMM", "TXT SINIT"), ("BIOS", null),
        ("BIOS", null), ("BIOS", null), (null, null), ("OS/VMM", "SEAMLDR ACM"),
    ];

    private static readonly (string? Category, string? Type)[] TdxLabels =
    [
        ("OS/VMM", "TDX Module"), ("OS/VMM", "TDX Module"), ("OS/VMM", "TDX Late Microcode Update"),
    ];

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly byte[] QeAttributesMask = Convert.FromHexString("FBFFFFFFFFFFFFFF0000000000000000");

    public static DcapCollateral Build(
        SimulatedPki pki, SimulatedQuotingEnclave qe, TdProfile profile, SimulatedCollateralOptions options, DateTimeOffset now)
    {
        var issued = SimulatedPki.TruncateToSeconds(now - options.Backdate);
        var next = issued + options.Validity;

        var tcbInfo = TcbInfoJson(pki.Platform, profile, options.TcbInfo, issued, next);
        var qeIdentity = QeIdentityJson(qe.Options, options.QeIdentity, issued, next);

        return new DcapCollateral
        {
            PckCrlIssuerChain = pki.PckCrlIssuerChainPem,
            RootCaCrl = pki.CreateRootCaCrl(options.RootCaCrl, issued, next),
            PckCrl = pki.CreatePckCrl(options.PckCrl, issued, next),
            TcbInfoIssuerChain = pki.TcbSigningChainPem,
            TcbInfo = tcbInfo,
            TcbInfoSignature = Sign(pki, tcbInfo, options.TcbInfo.SignedByUnrelatedKey, options.TcbInfo.CorruptSignature),
            QeIdentityIssuerChain = pki.TcbSigningChainPem,
            QeIdentity = qeIdentity,
            QeIdentitySignature = Sign(pki, qeIdentity, options.QeIdentity.SignedByUnrelatedKey, options.QeIdentity.CorruptSignature),
        };
    }

    internal static string TcbInfoJson(PckPlatformInfo platform, TdProfile profile, TcbInfoOptions options, DateTimeOffset issued, DateTimeOffset next, bool sgxShape = false)
    {
        var teeTcbSvn = profile.TeeTcbSvn.ToArray();
        var moduleMrSigner = options.ModuleMrSigner ?? profile.MrSignerSeam;
        return SimulatorJson.Object(WriterOptions, w =>
        {
            w.WriteString("id", options.Id);
            w.WriteNumber("version", options.Version);
            w.WriteString("issueDate", Date(options.IssueDate ?? issued));
            w.WriteString("nextUpdate", Date(options.NextUpdate ?? next));
            w.WriteString("fmspc", Convert.ToHexString((options.Fmspc ?? platform.Fmspc).Span));
            w.WriteString("pceId", Convert.ToHexString((options.PceId ?? platform.PceId).Span));
            w.WriteNumber("tcbType", 0);
            w.WriteNumber("tcbEvaluationDataNumber", options.TcbEvaluationDataNumber);

            if (!sgxShape)
            {
                w.WriteStartObject("tdxModule");
                WriteModuleSigner(w, moduleMrSigner.Span);
                w.WriteEndObject();
            }

            if (!sgxShape && !options.OmitModuleIdentities)
            {
                w.WriteStartArray("tdxModuleIdentities");
                w.WriteStartObject();
                w.WriteString("id", options.ModuleIdentityId ?? "TDX_" + teeTcbSvn[1].ToString("X2", CultureInfo.InvariantCulture));
                WriteModuleSigner(w, moduleMrSigner.Span);
                WriteLevels(w, options.ModuleLevels, level => w.WriteNumber("isvsvn", Clamp(teeTcbSvn[0] + level.SvnOffset, 255)));
                w.WriteEndObject();
                w.WriteEndArray();
            }

            WriteLevels(w, options.Levels, level =>
            {
                WriteComponents(w, "sgxtcbcomponents", platform.SgxTcbComponents.Span, level.SvnOffset, options.ComponentCount, SgxLabels);
                w.WriteNumber("pcesvn", Clamp(platform.PceSvn + level.PceSvnOffset + level.SvnOffset, ushort.MaxValue));
                if (!sgxShape)
                {
                    WriteComponents(w, "tdxtcbcomponents", teeTcbSvn, level.SvnOffset, options.ComponentCount, TdxLabels);
                }
            });
        });
    }

    internal static string QeIdentityJson(SimulatedQeOptions qe, QeIdentityOptions options, DateTimeOffset issued, DateTimeOffset next)
    {
        var attributes = options.Attributes?.ToArray() ?? Masked(qe.Attributes.Span, QeAttributesMask);
        return SimulatorJson.Object(WriterOptions, w =>
        {
            w.WriteString("id", options.Id);
            w.WriteNumber("version", options.Version);
            w.WriteString("issueDate", Date(options.IssueDate ?? issued));
            w.WriteString("nextUpdate", Date(options.NextUpdate ?? next));
            w.WriteNumber("tcbEvaluationDataNumber", options.TcbEvaluationDataNumber);
            w.WriteString("miscselect", qe.MiscSelect.ToString("X8", CultureInfo.InvariantCulture));
            w.WriteString("miscselectMask", "FFFFFFFF");
            w.WriteString("attributes", Convert.ToHexString(attributes));
            w.WriteString("attributesMask", Convert.ToHexString(QeAttributesMask));
            w.WriteString("mrsigner", Convert.ToHexString((options.MrSigner ?? qe.MrSigner).Span));
            w.WriteNumber("isvprodid", options.IsvProdId ?? qe.IsvProdId);
            WriteLevels(w, options.Levels, level => w.WriteNumber("isvsvn", Clamp(qe.IsvSvn + level.SvnOffset, ushort.MaxValue)));
        });
    }

    /// <summary>Intel's date format: second resolution, UTC, "Z".</summary>
    internal static string Date(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static byte[] Sign(SimulatedPki pki, string json, bool unrelatedKey, bool corrupt)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        byte[] signature;
        if (unrelatedKey)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            signature = key.SignData(bytes, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        else
        {
            signature = pki.SignWithTcbSigningKey(bytes);
        }

        if (corrupt)
        {
            signature[40] ^= 0x01;
        }

        return signature;
    }

    private static void WriteModuleSigner(Utf8JsonWriter w, ReadOnlySpan<byte> mrSigner)
    {
        w.WriteString("mrsigner", Convert.ToHexString(mrSigner));
        w.WriteString("attributes", "0000000000000000");
        w.WriteString("attributesMask", "FFFFFFFFFFFFFFFF");
    }

    private static void WriteComponents(
        Utf8JsonWriter w, string name, ReadOnlySpan<byte> values, int offset, int count, (string? Category, string? Type)[] labels)
    {
        w.WriteStartArray(name);
        for (var i = 0; i < count; i++)
        {
            w.WriteStartObject();
            var value = i < values.Length ? values[i] : 0;
            w.WriteNumber("svn", Clamp(value + offset, 255));
            if (i < labels.Length)
            {
                if (labels[i].Category is { } category)
                {
                    w.WriteString("category", category);
                }

                if (labels[i].Type is { } type)
                {
                    w.WriteString("type", type);
                }
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    /// <summary>A <c>tcbLevels</c> array: per level its <c>tcb</c> object (members written by <paramref name="tcb"/>), date, status and advisories.</summary>
    private static void WriteLevels(Utf8JsonWriter w, IReadOnlyList<SimulatedTcbLevel> levels, Action<SimulatedTcbLevel> tcb)
    {
        w.WriteStartArray("tcbLevels");
        foreach (var level in levels)
        {
            w.WriteStartObject();
            w.WriteStartObject("tcb");
            tcb(level);
            w.WriteEndObject();
            WriteLevelTail(w, level);
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteLevelTail(Utf8JsonWriter w, SimulatedTcbLevel level)
    {
        w.WriteString("tcbDate", Date(level.TcbDate));
        w.WriteString("tcbStatus", level.StatusText ?? level.Status.ToString());
        if (level.AdvisoryIds.Count > 0)
        {
            w.WriteStartArray("advisoryIDs");
            foreach (var id in level.AdvisoryIds)
            {
                w.WriteStringValue(id);
            }

            w.WriteEndArray();
        }
    }

    private static int Clamp(int value, int max) => Math.Clamp(value, 0, max);

    private static byte[] Masked(ReadOnlySpan<byte> value, ReadOnlySpan<byte> mask)
    {
        var result = new byte[mask.Length];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = (byte)(value[i] & mask[i]);
        }

        return result;
    }
}
