using System.Globalization;
using System.Text;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// The E2EE v2 AAD (e2ee-v2.md §6): RFC 8785 bytes of
/// <c>{"purpose":"aci.e2ee.request.v2","algo","model","field","nonce","ts"}</c> for request fields and
/// <c>{"purpose":"aci.e2ee.response.v2","algo","model","id","field","nonce","ts"}</c> for response fields. <c>model</c> is
/// the request's top-level model string byte-exact; <c>nonce</c> the header string as sent.
/// </summary>
public static class AciAad
{
    public const string RequestPurpose = "aci.e2ee.request.v2";
    public const string ResponsePurpose = "aci.e2ee.response.v2";

    public static byte[] Request(string algo, string model, string field, string nonce, long ts) => Build(RequestPurpose, algo, model, null, field, nonce, ts);

    public static byte[] Response(string algo, string model, string id, string field, string nonce, long ts) => Build(ResponsePurpose, algo, model, id, field, nonce, ts);

    /// <summary>Members in RFC 8785 order: algo, field, id (responses), model, nonce, purpose, ts.</summary>
    private static byte[] Build(string purpose, string algo, string model, string? id, string field, string nonce, long ts)
    {
        var b = new StringBuilder(256);
        b.Append("{\"algo\":");
        Jcs.AppendString(b, algo);
        b.Append(",\"field\":");
        Jcs.AppendString(b, field);
        if (id is not null)
        {
            b.Append(",\"id\":");
            Jcs.AppendString(b, id);
        }

        b.Append(",\"model\":");
        Jcs.AppendString(b, model);
        b.Append(",\"nonce\":");
        Jcs.AppendString(b, nonce);
        b.Append(",\"purpose\":\"").Append(purpose).Append("\",\"ts\":").Append(ts.ToString(CultureInfo.InvariantCulture)).Append('}');
        return Encoding.UTF8.GetBytes(b.ToString());
    }
}
