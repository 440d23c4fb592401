using System.Buffers.Binary;

namespace PrivateMl.Tee.Tdx;

/// <summary>Where report_data sits in a TDX DCAP quote (v4: 48-byte header + TD report; v5: header + 6-byte body descriptor).</summary>
internal static class TdxQuoteShape
{
    public const int HeaderSize = 48;
    public const int ReportDataOffsetInBody = 520;
    public const int ReportDataSize = 64;

    /// <summary>Offset of report_data, or -1 when the blob is not a TDX quote of a known version.</summary>
    public static int ReportDataOffset(ReadOnlySpan<byte> quote)
    {
        if (quote.Length < HeaderSize)
        {
            return -1;
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(quote);
        var teeType = BinaryPrimitives.ReadUInt32LittleEndian(quote[4..]);
        if (teeType != 0x81)
        {
            return -1;
        }

        var offset = version switch
        {
            4 => HeaderSize + ReportDataOffsetInBody,
            5 => HeaderSize + 6 + ReportDataOffsetInBody,
            _ => -1,
        };
        return offset >= 0 && quote.Length >= offset + ReportDataSize ? offset : -1;
    }

    /// <summary>Throws <see cref="TdxDeviceException"/> (<see cref="TdxDeviceError.InvalidQuote"/>) unless the quote is a TDX
    /// quote over exactly <paramref name="reportData"/>.</summary>
    public static void CheckQuote(ReadOnlySpan<byte> quote, ReadOnlySpan<byte> reportData, string source)
    {
        var offset = ReportDataOffset(quote);
        if (offset < 0)
        {
            throw new TdxDeviceException(TdxDeviceError.InvalidQuote, $"{source} returned {quote.Length} bytes that are not a TDX v4/v5 quote");
        }

        if (!quote.Slice(offset, ReportDataSize).SequenceEqual(reportData))
        {
            throw new TdxDeviceException(TdxDeviceError.InvalidQuote, $"{source} returned a quote over other report data than requested");
        }
    }
}
