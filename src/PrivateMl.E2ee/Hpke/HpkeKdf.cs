using System.Buffers.Binary;
using System.Security.Cryptography;

namespace PrivateMl.E2ee.Hpke;

/// <summary>RFC 9180 §4 LabeledExtract and LabeledExpand over the BCL's HKDF-SHA256.</summary>
internal static class HpkeKdf
{
    private static ReadOnlySpan<byte> Version => "HPKE-v1"u8;

    /// <summary><c>HKDF-Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm)</c>.</summary>
    public static byte[] LabeledExtract(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> label, ReadOnlySpan<byte> ikm)
    {
        var labeled = new byte[Version.Length + suiteId.Length + label.Length + ikm.Length];
        try
        {
            var w = labeled.AsSpan();
            Version.CopyTo(w);
            suiteId.CopyTo(w[Version.Length..]);
            label.CopyTo(w[(Version.Length + suiteId.Length)..]);
            ikm.CopyTo(w[(Version.Length + suiteId.Length + label.Length)..]);
            var prk = new byte[HpkeSuite.HashLength];
            HKDF.Extract(HashAlgorithmName.SHA256, labeled, salt, prk);
            return prk;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(labeled);
        }
    }

    /// <summary><c>HKDF-Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L)</c>.</summary>
    public static byte[] LabeledExpand(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> prk, ReadOnlySpan<byte> label, ReadOnlySpan<byte> info, int length)
    {
        if (length is <= 0 or > 255 * HpkeSuite.HashLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "HPKE expand length must be 1..8160 bytes");
        }

        var labeled = new byte[2 + Version.Length + suiteId.Length + label.Length + info.Length];
        var w = labeled.AsSpan();
        BinaryPrimitives.WriteUInt16BigEndian(w, (ushort)length);
        Version.CopyTo(w[2..]);
        suiteId.CopyTo(w[(2 + Version.Length)..]);
        label.CopyTo(w[(2 + Version.Length + suiteId.Length)..]);
        info.CopyTo(w[(2 + Version.Length + suiteId.Length + label.Length)..]);
        var output = new byte[length];
        HKDF.Expand(HashAlgorithmName.SHA256, prk, output, labeled);
        return output;
    }
}
