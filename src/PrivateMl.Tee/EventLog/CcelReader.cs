using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Tee.EventLog;

/// <summary>Reads this TD's boot-time event log (RTMR0–2) from the ACPI CCEL table, for <see cref="RuntimeEventLogOptions.BootEvents"/>.</summary>
public static class CcelReader
{
    /// <summary>Where Linux exposes the CCEL log area.</summary>
    public const string DefaultPath = "/sys/firmware/acpi/tables/data/CCEL";

    /// <summary>
    /// The boot events, or null when <paramref name="path"/> does not exist (not a TDX guest, or firmware without CCEL).
    /// A log that cannot be parsed is an <see cref="AttestationException"/>.
    /// </summary>
    public static IReadOnlyList<TdxEvent>? ReadOrNull(string path = DefaultPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            bytes = ReadBounded(stream, path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }

        return CcelEventLog.Parse(bytes);
    }

    private static byte[] ReadBounded(Stream stream, string path)
    {
        // sysfs reports no useful length for ACPI tables, so read until EOF with a cap.
        using var buffer = new MemoryStream();
        var chunk = new byte[64 * 1024];
        int read;
        while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (buffer.Length + read > CcelEventLog.MaxLogBytes)
            {
                throw new AttestationException(ErrorCode.EventLogTooLarge, $"{path} is larger than {CcelEventLog.MaxLogBytes} bytes");
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
