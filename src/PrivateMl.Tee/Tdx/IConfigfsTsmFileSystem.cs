namespace PrivateMl.Tee.Tdx;

/// <summary>
/// The file operations the configfs-tsm report protocol needs. The real one is <see cref="ConfigfsTsmFileSystem.Real"/>;
/// tests substitute a fake that follows the kernel's rules (generation counter, 64-byte inblob limit, outblob made
/// from inblob).
/// </summary>
public interface IConfigfsTsmFileSystem
{
    bool DirectoryExists(string path);

    /// <summary>mkdir(2): creates a report entry; the kernel populates its attribute files.</summary>
    void CreateDirectory(string path);

    /// <summary>rmdir(2): removes a report entry.</summary>
    void RemoveDirectory(string path);

    /// <summary>Reads a whole attribute, failing with <see cref="InvalidDataException"/> past <paramref name="maxBytes"/>.</summary>
    byte[] ReadFile(string path, int maxBytes);

    /// <summary>Writes an attribute in one write and closes it (configfs commits binary attributes on close).</summary>
    void WriteFile(string path, ReadOnlySpan<byte> data);
}

/// <summary>configfs-tsm over the real file system.</summary>
public sealed class ConfigfsTsmFileSystem : IConfigfsTsmFileSystem
{
    private ConfigfsTsmFileSystem()
    {
    }

    public static ConfigfsTsmFileSystem Real { get; } = new();

    public bool DirectoryExists(string path) => Directory.Exists(path);

    public void CreateDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            throw new IOException($"{path} already exists");
        }

        Directory.CreateDirectory(path);
    }

    public void RemoveDirectory(string path) => Directory.Delete(path, recursive: false);

    public byte[] ReadFile(string path, int maxBytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
        var buffer = new byte[Math.Min(maxBytes + 1, 64 * 1024)];
        var total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (buffer.Length > maxBytes)
                {
                    throw new InvalidDataException($"{path} holds more than {maxBytes} bytes");
                }

                Array.Resize(ref buffer, Math.Min(buffer.Length * 2, maxBytes + 1));
            }

            var read = stream.Read(buffer, total, buffer.Length - total);
            if (read == 0)
            {
                break;
            }

            total += read;
            if (total > maxBytes)
            {
                throw new InvalidDataException($"{path} holds more than {maxBytes} bytes");
            }
        }

        return buffer.AsSpan(0, total).ToArray();
    }

    public void WriteFile(string path, ReadOnlySpan<byte> data)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        stream.Write(data);
    }
}
