using NSec.Cryptography;

namespace PrivateMl.Client;

/// <summary>The hex and Ed25519 helpers that response signatures and receipts share.</summary>
internal static class SignatureEncoding
{
    /// <summary>Hex of exactly <paramref name="length"/> bytes, optionally 0x-prefixed; false for anything else.</summary>
    public static bool TryHex(string text, int length, out byte[] bytes)
    {
        var t = Strip0x(text);
        bytes = [];
        if (t.Length != length * 2 || !t.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        bytes = Convert.FromHexString(t);
        return true;
    }

    public static string Strip0x(string s) => s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? s[2..] : s;

    public static bool VerifyEd25519(byte[] publicKey, byte[] data, byte[] signature)
    {
        var algorithm = SignatureAlgorithm.Ed25519;
        return PublicKey.TryImport(algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var key) && key is not null && algorithm.Verify(key, data, signature);
    }
}
