using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.Tdx;

/// <summary>
/// An in-memory configfs-tsm report subsystem that follows the kernel's rules (Linux drivers/virt/coco/tsm.c, as the
/// go-configfs-tsm fake models them): mkdir under the root makes an entry whose attributes exist at once; each write
/// to a writable attribute bumps the entry's <c>generation</c>; <c>inblob</c> takes at most 64 bytes (EINVAL above);
/// <c>outblob</c> is generated from the current <c>inblob</c> (EINVAL when none was written); <c>provider</c> names the
/// TSM; only the root may hold entries; rmdir removes an entry.
/// </summary>
internal sealed class FakeConfigfsTsm : IConfigfsTsmFileSystem
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    public FakeConfigfsTsm(string root) => Root = root.TrimEnd('/');

    public string Root { get; }

    /// <summary>Value of every entry's <c>provider</c> attribute.</summary>
    public string Provider { get; set; } = "tdx_guest\n";

    /// <summary>Builds the outblob from the inblob; defaults to a v4-shaped TDX quote carrying it as report_data.</summary>
    public Func<byte[], byte[]> MakeQuote { get; set; } = FakeQuote;

    /// <summary>Called before an attribute is read (entry path, attribute); lets a test play a racing writer.</summary>
    public Action<string, string>? BeforeRead { get; set; }

    public int EntryCount
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    public int EntriesCreated { get; private set; }

    public static byte[] FakeQuote(byte[] reportData)
    {
        var quote = new byte[48 + 584 + 4];
        BinaryPrimitives.WriteUInt16LittleEndian(quote, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(quote.AsSpan(4), 0x81);
        reportData.CopyTo(quote.AsSpan(568));
        return quote;
    }

    public bool DirectoryExists(string path)
    {
        path = path.TrimEnd('/');
        lock (_lock)
        {
            return path == Root || _entries.ContainsKey(path);
        }
    }

    public void CreateDirectory(string path)
    {
        var (parent, name) = Split(path);
        lock (_lock)
        {
            if (parent != Root)
            {
                // Report entries cannot nest, and nothing else lives under the tsm root in this fake.
                throw new IOException($"mkdir {path}: not permitted", Errno.EPERM);
            }

            if (_entries.ContainsKey(path))
            {
                throw new IOException($"mkdir {path}: exists");
            }

            _entries[path] = new Entry(name);
            EntriesCreated++;
        }
    }

    public void RemoveDirectory(string path)
    {
        lock (_lock)
        {
            if (!_entries.Remove(path.TrimEnd('/')))
            {
                throw new DirectoryNotFoundException($"rmdir {path}: no such entry");
            }
        }
    }

    public byte[] ReadFile(string path, int maxBytes)
    {
        var (entryPath, attribute) = Split(path);
        BeforeRead?.Invoke(entryPath, attribute);
        byte[] data;
        lock (_lock)
        {
            var entry = Find(entryPath, path);
            data = attribute switch
            {
                "generation" => Encoding.ASCII.GetBytes(entry.Generation.ToString(CultureInfo.InvariantCulture) + "\n"),
                "provider" => Encoding.UTF8.GetBytes(Provider),
                "privlevel_floor" => "0\n"u8.ToArray(),
                "outblob" => entry.InBlob is { } inblob
                    ? MakeQuote(inblob)
                    : throw new IOException($"read {path}: no inblob written", Errno.EINVAL),
                "inblob" or "privlevel" => throw new UnauthorizedAccessException($"read {path}: write-only attribute"),
                _ => throw new FileNotFoundException($"{path}: no such attribute"),
            };
        }

        if (data.Length > maxBytes)
        {
            throw new InvalidDataException($"{path} holds more than {maxBytes} bytes");
        }

        return data;
    }

    public void WriteFile(string path, ReadOnlySpan<byte> data)
    {
        var (entryPath, attribute) = Split(path);
        lock (_lock)
        {
            var entry = Find(entryPath, path);
            switch (attribute)
            {
                case "inblob":
                    if (data.Length > 64)
                    {
                        throw new IOException($"write {path}: inblob holds at most 64 bytes", Errno.EINVAL);
                    }

                    entry.InBlob = data.ToArray();
                    break;
                case "privlevel":
                    var text = Encoding.ASCII.GetString(data).TrimEnd('\n');
                    if (!uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var level) || level > 3)
                    {
                        throw new IOException($"write {path}: privlevel must be 0-3", Errno.EINVAL);
                    }

                    break;
                case "generation" or "provider" or "outblob" or "privlevel_floor":
                    throw new UnauthorizedAccessException($"write {path}: read-only attribute");
                default:
                    throw new FileNotFoundException($"{path}: no such attribute");
            }

            entry.Generation++;
        }
    }

    private Entry Find(string entryPath, string path) =>
        _entries.TryGetValue(entryPath, out var entry) ? entry : throw new FileNotFoundException($"{path}: no such entry");

    private static (string Parent, string Name) Split(string path)
    {
        path = path.TrimEnd('/');
        var slash = path.LastIndexOf('/');
        return slash < 0 ? ("", path) : (path[..slash], path[(slash + 1)..]);
    }

    private sealed class Entry(string name)
    {
        public string Name { get; } = name;

        public ulong Generation { get; set; }

        public byte[]? InBlob { get; set; }
    }
}
