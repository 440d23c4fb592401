using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// The ACI attestation statement (aci.md §3.2):
/// <c>{"keyset_digest":"sha256:&lt;hex&gt;","nonce":"&lt;nonce&gt;"|null,"purpose":"aci.report_data.v1"}</c>, exact bytes,
/// and <c>report_data = sha256(statement)</c>, placed in the TDX REPORTDATA as bytes 0–31 with bytes 32–63 zero.
/// Without a nonce the statement proves binding only, not freshness.
/// </summary>
public static class AciStatement
{
    public const string Purpose = "aci.report_data.v1";

    /// <summary>True for exactly 64 lower-case hex characters (the only nonce form the spec accepts).</summary>
    public static bool IsValidNonce(string? nonce) =>
        nonce is { Length: 64 } && nonce.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));

    /// <summary>True for <c>sha256:</c> followed by 64 lower-case hex characters.</summary>
    public static bool IsValidDigest(string? digest) =>
        digest is { Length: 71 } && digest.StartsWith("sha256:", StringComparison.Ordinal) && IsValidNonce(digest[7..]);

    /// <summary>The statement bytes for <paramref name="keysetDigest"/> and <paramref name="nonce"/> (null: the binding-only form).</summary>
    public static byte[] Build(string keysetDigest, string? nonce)
    {
        if (!IsValidDigest(keysetDigest))
        {
            throw new ArgumentException("the keyset digest must be sha256:<64 lower-case hex>", nameof(keysetDigest));
        }

        if (nonce is not null && !IsValidNonce(nonce))
        {
            throw new ArgumentException("the nonce must be 64 lower-case hex characters", nameof(nonce));
        }

        var text = "{\"keyset_digest\":\"" + keysetDigest + "\",\"nonce\":" + (nonce is null ? "null" : "\"" + nonce + "\"") + ",\"purpose\":\"" + Purpose + "\"}";
        return Encoding.ASCII.GetBytes(text);
    }

    /// <summary>sha256 of the statement (32 bytes).</summary>
    public static byte[] ReportData(string keysetDigest, string? nonce) => SHA256.HashData(Build(keysetDigest, nonce));

    /// <summary>The 64-byte TDX REPORTDATA: <see cref="ReportData"/> then 32 zero bytes.</summary>
    public static byte[] ReportDataSlot(string keysetDigest, string? nonce)
    {
        var slot = new byte[64];
        ReportData(keysetDigest, nonce).CopyTo(slot, 0);
        return slot;
    }

    /// <summary>
    /// True when a quote's 64-byte REPORTDATA binds <paramref name="keyset"/> and <paramref name="nonce"/> (aci.md §9.1),
    /// compared in constant time.
    /// </summary>
    public static bool Binds(ReadOnlySpan<byte> reportData, WorkloadKeyset keyset, string? nonce)
    {
        ArgumentNullException.ThrowIfNull(keyset);
        return reportData.Length == 64 && CryptographicOperations.FixedTimeEquals(reportData, ReportDataSlot(keyset.Digest, nonce));
    }
}
