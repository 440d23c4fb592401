using System.Text;
using System.Text.Json;

namespace PrivateMl.Tee.Simulator;

/// <summary>Reads and writes the simulator's own state files (hex values, no reflection so the project stays AOT-clean).</summary>
internal static class SimulatorJson
{
    public static string SerializePlatform(PckPlatformInfo p, string crlBaseUrl) => Write(w =>
    {
        w.WriteString("ca", p.CaKind == PckCaKind.Platform ? "platform" : "processor");
        w.WriteString("crl_base_url", crlBaseUrl);
        w.WriteString("ppid", Convert.ToHexStringLower(p.Ppid.Span));
        w.WriteString("sgx_tcb_components", Convert.ToHexStringLower(p.SgxTcbComponents.Span));
        w.WriteNumber("pce_svn", p.PceSvn);
        w.WriteString("pce_id", Convert.ToHexStringLower(p.PceId.Span));
        w.WriteString("fmspc", Convert.ToHexStringLower(p.Fmspc.Span));
        w.WriteNumber("sgx_type", (int)p.SgxType);
        w.WriteString("platform_instance_id", Convert.ToHexStringLower(p.PlatformInstanceId.Span));
        w.WriteBoolean("dynamic_platform", p.DynamicPlatform);
        w.WriteBoolean("cached_keys", p.CachedKeys);
        w.WriteBoolean("smt_enabled", p.SmtEnabled);
    });

    public static (PckPlatformInfo Platform, string CrlBaseUrl) DeserializePlatform(string json)
    {
        using var document = Parse(json);
        var r = document.RootElement;
        var platform = new PckPlatformInfo
        {
            CaKind = Text(r, "ca") == "processor" ? PckCaKind.Processor : PckCaKind.Platform,
            Ppid = Hex(r, "ppid"),
            SgxTcbComponents = Hex(r, "sgx_tcb_components"),
            PceSvn = r.GetProperty("pce_svn").GetUInt16(),
            PceId = Hex(r, "pce_id"),
            Fmspc = Hex(r, "fmspc"),
            SgxType = (SgxType)r.GetProperty("sgx_type").GetInt32(),
            PlatformInstanceId = Hex(r, "platform_instance_id"),
            DynamicPlatform = r.GetProperty("dynamic_platform").GetBoolean(),
            CachedKeys = r.GetProperty("cached_keys").GetBoolean(),
            SmtEnabled = r.GetProperty("smt_enabled").GetBoolean(),
        };
        platform.Validate();
        return (platform, Text(r, "crl_base_url"));
    }

    public static string SerializeQe(SimulatedQeOptions q) => Write(w =>
    {
        w.WriteString("mr_signer", Convert.ToHexStringLower(q.MrSigner.Span));
        w.WriteString("mr_enclave", Convert.ToHexStringLower(q.MrEnclave.Span));
        w.WriteNumber("isv_prod_id", q.IsvProdId);
        w.WriteNumber("isv_svn", q.IsvSvn);
        w.WriteString("attributes", Convert.ToHexStringLower(q.Attributes.Span));
        w.WriteNumber("misc_select", q.MiscSelect);
        w.WriteString("auth_data", Convert.ToHexStringLower(q.AuthData.Span));
    });

    public static SimulatedQeOptions DeserializeQe(string json)
    {
        using var document = Parse(json);
        var r = document.RootElement;
        return new SimulatedQeOptions
        {
            MrSigner = Hex(r, "mr_signer"),
            MrEnclave = Hex(r, "mr_enclave"),
            IsvProdId = r.GetProperty("isv_prod_id").GetUInt16(),
            IsvSvn = r.GetProperty("isv_svn").GetUInt16(),
            Attributes = Hex(r, "attributes"),
            MiscSelect = r.GetProperty("misc_select").GetUInt32(),
            AuthData = Hex(r, "auth_data"),
        };
    }

    private static JsonDocument Parse(string json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException("simulator state file is not valid JSON", ex);
        }
    }

    private static string Text(JsonElement element, string name) =>
        element.GetProperty(name).GetString() ?? throw new InvalidDataException($"simulator state: '{name}' is null");

    private static byte[] Hex(JsonElement element, string name) => Convert.FromHexString(Text(element, name));

    /// <summary>A state file's text: one indented JSON object written by <paramref name="members"/>, then a newline.</summary>
    internal static string Write(Action<Utf8JsonWriter> members) => Object(new JsonWriterOptions { Indented = true }, members) + "\n";

    /// <summary>One JSON object written by <paramref name="members"/>, as text.</summary>
    internal static string Object(JsonWriterOptions options, Action<Utf8JsonWriter> members)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, options))
        {
            writer.WriteStartObject();
            members(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
