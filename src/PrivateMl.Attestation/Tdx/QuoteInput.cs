using System.Buffers.Text;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx;

/// <summary>How a quote file was encoded.</summary>
public enum QuoteEncoding
{
    Binary,
    Hex,
    Base64,
}

/// <summary>
/// Turns the bytes of a quote file into quote bytes: raw binary, hex (optionally <c>0x</c>-prefixed, whitespace
/// ignored) or base64 are detected. Text is recognised only when every byte is printable ASCII or whitespace, which a
/// binary quote (version 3..5 little-endian, so its second byte is 0x00) never is.
/// </summary>
public static class QuoteInput
{
    /// <summary>Decodes a quote file; malformed or oversized input raises <see cref="AttestationException"/>.</summary>
    public static byte[] Decode(ReadOnlySpan<byte> file) => Decode(file, out _);

    /// <summary>Decodes a quote file and says which encoding was found.</summary>
    public static byte[] Decode(ReadOnlySpan<byte> file, out QuoteEncoding encoding)
    {
        if (file.Length > QuoteLimits.MaxEncodedInputSize)
        {
            throw new AttestationException(ErrorCode.QuoteTooLarge, $"the input is {file.Length} bytes; at most {QuoteLimits.MaxEncodedInputSize} are accepted");
        }

        if (file.IsEmpty)
        {
            throw new AttestationException(ErrorCode.MalformedInput, "the input is empty");
        }

        if (!IsText(file))
        {
            encoding = QuoteEncoding.Binary;
            return file.ToArray();
        }

        // Compact: drop ASCII whitespace anywhere, then an optional 0x prefix.
        Span<byte> text = new byte[file.Length];
        var n = 0;
        foreach (var b in file)
        {
            if (!IsWhitespace(b))
            {
                text[n++] = b;
            }
        }

        text = text[..n];
        var hasPrefix = text.Length >= 2 && text[0] == (byte)'0' && (text[1] | 0x20) == (byte)'x';
        var hexBody = hasPrefix ? text[2..] : text;
        if (hexBody.Length > 0 && hexBody.Length % 2 == 0 && IsAllHex(hexBody))
        {
            encoding = QuoteEncoding.Hex;
            return Convert.FromHexString(System.Text.Encoding.ASCII.GetString(hexBody));
        }

        if (!hasPrefix && Base64.IsValid(text, out var decodedLength))
        {
            var result = new byte[decodedLength];
            if (Base64.DecodeFromUtf8(text, result, out _, out var written) == System.Buffers.OperationStatus.Done && written == decodedLength)
            {
                encoding = QuoteEncoding.Base64;
                return result;
            }
        }

        throw new AttestationException(ErrorCode.MalformedInput, "the input is text but neither hex nor base64");
    }

    private static bool IsText(ReadOnlySpan<byte> file)
    {
        foreach (var b in file)
        {
            if (!(b is >= 0x20 and < 0x7f) && !IsWhitespace(b))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsWhitespace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    private static bool IsAllHex(ReadOnlySpan<byte> text)
    {
        foreach (var b in text)
        {
            if (!char.IsAsciiHexDigit((char)b))
            {
                return false;
            }
        }

        return true;
    }
}
