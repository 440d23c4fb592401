using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.Tee.Tdx;

/// <summary>
/// Gets TDX quotes through the Linux configfs-tsm report interface (Linux ≥ 6.7,
/// <c>/sys/kernel/config/tsm/report</c>): mkdir a fresh entry, read its <c>generation</c>, write the 64-byte
/// <c>inblob</c> (the generation goes up by one), read <c>provider</c> and <c>outblob</c> (the quote), re-read
/// <c>generation</c> and fail with <see cref="TdxDeviceError.GenerationMismatch"/> if anyone else wrote to the entry in
/// between, then rmdir the entry. The quote must carry exactly the requested report data. Thread-safe; requests are
/// serialized.
/// </summary>
public sealed class ConfigfsTsmQuoteProvider : ITdxQuoteSource
{
    /// <summary>The report subsystem's directory on Linux.</summary>
    public const string DefaultReportRoot = "/sys/kernel/config/tsm/report";

    /// <summary>The configfs-tsm provider name prefix of a TDX guest (<c>tdx_guest</c>).</summary>
    public const string TdxProviderPrefix = "tdx_guest";

    /// <summary>Largest quote read from <c>outblob</c>.</summary>
    public const int MaxQuoteBytes = 64 * 1024;

    private const int InBlobSize = 64;
    private const int MaxSmallAttributeBytes = 256;

    private readonly IConfigfsTsmFileSystem _fs;
    private readonly Lock _lock = new();

    public ConfigfsTsmQuoteProvider(string reportRoot = DefaultReportRoot, IConfigfsTsmFileSystem? fileSystem = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(reportRoot);
        ReportRoot = reportRoot.TrimEnd('/');
        _fs = fileSystem ?? ConfigfsTsmFileSystem.Real;
    }

    public string Name => "configfs-tsm";

    /// <summary>The report subsystem directory this provider creates entries in.</summary>
    public string ReportRoot { get; }

    /// <summary>The <c>provider</c> attribute read on the last successful request (e.g. <c>tdx_guest</c>).</summary>
    public string? LastProvider { get; private set; }

    public async ValueTask<byte[]> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken = default)
    {
        if (reportData.Length != InBlobSize)
        {
            throw new ArgumentException($"report data must be exactly {InBlobSize} bytes (pad it)", nameof(reportData));
        }

        cancellationToken.ThrowIfCancellationRequested();

        // Reading outblob blocks in the kernel while the host produces the quote: keep it off the caller's thread.
        var data = reportData.ToArray();
        return await Task.Run(
            () =>
            {
                lock (_lock)
                {
                    return GetQuote(data);
                }
            },
            CancellationToken.None).ConfigureAwait(false);
    }

    private byte[] GetQuote(ReadOnlySpan<byte> reportData)
    {
        if (!_fs.DirectoryExists(ReportRoot))
        {
            throw new TdxDeviceException(
                TdxDeviceError.NotPresent,
                $"{ReportRoot} does not exist: configfs-tsm needs Linux 6.7 or later with CONFIG_TSM_REPORTS, running as a TDX guest, and configfs mounted on /sys/kernel/config");
        }

        var entry = ReportRoot + "/privateml-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        try
        {
            _fs.CreateDirectory(entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw TdxDeviceException.FromIo($"mkdir {entry}", e);
        }

        try
        {
            var expected = ReadGeneration(entry);
            Write(entry, "inblob", reportData);
            expected++;

            var provider = Encoding.UTF8.GetString(Read(entry, "provider", MaxSmallAttributeBytes, expected)).TrimEnd('\n', '\0', ' ');
            if (!provider.StartsWith(TdxProviderPrefix, StringComparison.Ordinal))
            {
                throw new TdxDeviceException(TdxDeviceError.WrongProvider, $"configfs-tsm provider is \"{provider}\", not a TDX guest ({TdxProviderPrefix})");
            }

            var quote = Read(entry, "outblob", MaxQuoteBytes, expected);
            TdxQuoteShape.CheckQuote(quote, reportData, $"{entry}/outblob");
            LastProvider = provider;
            return quote;
        }
        finally
        {
            try
            {
                _fs.RemoveDirectory(entry);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A leftover entry holds no secret and is not reused; the quote (or the real error) matters more.
            }
        }
    }

    private ulong ReadGeneration(string entry)
    {
        var raw = ReadRaw(entry, "generation", MaxSmallAttributeBytes);
        var text = Encoding.ASCII.GetString(raw).TrimEnd('\n');
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var generation))
        {
            throw new TdxDeviceException(TdxDeviceError.DeviceFailure, $"{entry}/generation holds \"{text}\", not a number");
        }

        return generation;
    }

    /// <summary>Reads an attribute, then checks that the entry's generation is still <paramref name="expected"/>.</summary>
    private byte[] Read(string entry, string attribute, int maxBytes, ulong expected)
    {
        var data = ReadRaw(entry, attribute, maxBytes);
        var generation = ReadGeneration(entry);
        if (generation != expected)
        {
            throw new TdxDeviceException(
                TdxDeviceError.GenerationMismatch,
                $"{entry}: generation was {generation} while reading {attribute}, expected {expected}; another writer raced this request");
        }

        return data;
    }

    private byte[] ReadRaw(string entry, string attribute, int maxBytes)
    {
        var path = entry + "/" + attribute;
        try
        {
            return _fs.ReadFile(path, maxBytes);
        }
        catch (InvalidDataException e)
        {
            throw new TdxDeviceException(TdxDeviceError.InvalidQuote, $"{path} is larger than {maxBytes} bytes", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw TdxDeviceException.FromIo($"read {path}", e);
        }
    }

    private void Write(string entry, string attribute, ReadOnlySpan<byte> data)
    {
        var path = entry + "/" + attribute;
        try
        {
            _fs.WriteFile(path, data);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw TdxDeviceException.FromIo($"write {path}", e);
        }
    }
}
