using System.Globalization;
using System.Text;

namespace PrivateMl.Vmm.DevImage;

/// <summary>
/// Writes a cpio archive in the "newc" format (magic <c>070701</c>), the format the Linux kernel unpacks as an
/// initramfs: a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name padded to 4 bytes, then
/// the data padded to 4 bytes, ending with the <c>TRAILER!!!</c> entry. Times are written as 0 and owners as root, so
/// the same inputs give the same bytes.
/// </summary>
public sealed class CpioNewcWriter : IDisposable
{
    private const int HeaderSize = 110;
    private const uint TypeDirectory = 0x4000;
    private const uint TypeRegular = 0x8000;
    private const uint TypeSymlink = 0xA000;

    private readonly Stream _output;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private uint _inode = 1;
    private bool _finished;

    public CpioNewcWriter(Stream output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
    }

    /// <summary>Adds a directory (and, first, its missing parents with mode 0755).</summary>
    public void AddDirectory(string path, uint mode = 0x1ED)
    {
        var name = Normalize(path);
        AddParents(name);
        if (_names.Add(name))
        {
            WriteEntry(name, TypeDirectory | (mode & 0xFFF), nlink: 2, ReadOnlySpan<byte>.Empty);
        }
    }

    /// <summary>Adds a regular file with <paramref name="content"/>; parents are added as needed.</summary>
    public void AddFile(string path, ReadOnlySpan<byte> content, uint mode = 0x1A4)
    {
        var name = Normalize(path);
        AddParents(name);
        if (!_names.Add(name))
        {
            throw new ArgumentException($"{name} is already in the archive", nameof(path));
        }

        WriteEntry(name, TypeRegular | (mode & 0xFFF), nlink: 1, content);
    }

    /// <summary>Adds a regular file copied from <paramref name="sourcePath"/> (streamed, any size up to 4 GiB).</summary>
    public void AddFileFrom(string path, string sourcePath, uint mode)
    {
        var name = Normalize(path);
        AddParents(name);
        if (!_names.Add(name))
        {
            throw new ArgumentException($"{name} is already in the archive", nameof(path));
        }

        using var source = File.OpenRead(sourcePath);
        if (source.Length > uint.MaxValue)
        {
            throw new IOException($"{sourcePath} is too large for a newc archive");
        }

        WriteHeader(name, TypeRegular | (mode & 0xFFF), nlink: 1, (uint)source.Length);
        source.CopyTo(_output);
        Pad(source.Length);
    }

    /// <summary>Adds a symbolic link <paramref name="path"/> → <paramref name="target"/>.</summary>
    public void AddSymlink(string path, string target)
    {
        var name = Normalize(path);
        AddParents(name);
        if (_names.Add(name))
        {
            WriteEntry(name, TypeSymlink | 0x1FF, nlink: 1, Encoding.UTF8.GetBytes(target));
        }
    }

    /// <summary>Writes the trailer; the writer accepts nothing afterwards.</summary>
    public void Finish()
    {
        if (_finished)
        {
            return;
        }

        _inode = 0;
        WriteEntry("TRAILER!!!", 0, nlink: 1, ReadOnlySpan<byte>.Empty);
        _finished = true;
        _output.Flush();
    }

    public void Dispose() => Finish();

    private void AddParents(string name)
    {
        var slash = name.LastIndexOf('/');
        if (slash > 0)
        {
            AddDirectory(name[..slash]);
        }
    }

    private void WriteEntry(string name, uint mode, uint nlink, ReadOnlySpan<byte> content)
    {
        WriteHeader(name, mode, nlink, (uint)content.Length);
        _output.Write(content);
        Pad(content.Length);
    }

    private void WriteHeader(string name, uint mode, uint nlink, uint size)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var header = new StringBuilder(HeaderSize);
        header.Append("070701");
        foreach (var field in new uint[] { _inode++, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, (uint)nameBytes.Length + 1, 0 })
        {
            header.Append(field.ToString("x8", CultureInfo.InvariantCulture));
        }

        _output.Write(Encoding.ASCII.GetBytes(header.ToString()));
        _output.Write(nameBytes);
        _output.WriteByte(0);
        Pad(HeaderSize + nameBytes.Length + 1);
    }

    private void Pad(long length)
    {
        var padding = (int)((4 - (length % 4)) % 4);
        for (var i = 0; i < padding; i++)
        {
            _output.WriteByte(0);
        }
    }

    private static string Normalize(string path)
    {
        var name = path.Replace('\\', '/').Trim('/');
        if (name.Length == 0 || name.Split('/').Any(part => part is "" or "." or ".."))
        {
            throw new ArgumentException($"'{path}' is not a relative archive path", nameof(path));
        }

        return name;
    }
}
