namespace PrivateMl.Vmm.DevImage;

/// <summary>
/// The dev-image cache (<c>~/.cache/privateml/dev-image</c>) is shared by every build on the machine: concurrent
/// <c>build-dev</c> runs, and test fixtures that build images in parallel. <see cref="Lock"/> serialises them on one
/// lock file; <see cref="GetOrFill"/> fills an entry in a temporary directory and renames it into place, so an entry
/// is either absent or complete, also after a build was killed halfway.
/// </summary>
internal static class DevImageCache
{
    public const string LockFileName = ".lock";

    private const string TemporaryPrefix = ".tmp-";
    private static readonly TimeSpan RetryInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Takes the cache's lock: an exclusive lock on <c>&lt;cache&gt;/.lock</c> (.NET's <see cref="FileShare.None"/>, an
    /// advisory <c>flock</c> on Linux, which the kernel drops when the holder exits or is killed), waiting while another
    /// build holds it — <paramref name="waiting"/> is told once, when the wait begins. Dispose to release.
    /// </summary>
    /// <exception cref="DevImageException">Another build held the lock for longer than <paramref name="timeout"/>.</exception>
    public static IDisposable Lock(string cacheDirectory, TimeSpan timeout, Action<string>? waiting = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(cacheDirectory);
        Directory.CreateDirectory(cacheDirectory);
        var path = Path.Combine(cacheDirectory, LockFileName);
        var tries = Math.Max(1, (long)(timeout / RetryInterval));
        for (long i = 0; ; i++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (File.Exists(path) && i < tries)
            {
                if (i == 0)
                {
                    waiting?.Invoke($"waiting for another build that holds {path}");
                }

                Thread.Sleep(RetryInterval);
            }
            catch (IOException e) when (File.Exists(path))
            {
                throw new DevImageException($"another build held {path} for longer than {timeout}; try again when it is done", e);
            }
        }
    }

    /// <summary>
    /// <c>root/name</c> when it holds <paramref name="completeMarker"/>; otherwise <paramref name="fill"/> writes the entry
    /// into a fresh temporary directory beside it (and must write the marker last), which is then renamed to
    /// <c>root/name</c>. Call it holding <see cref="Lock"/>: leftovers of killed fills and incomplete entries are removed here.
    /// </summary>
    public static string GetOrFill(string root, string name, string completeMarker, Action<string> fill)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(completeMarker);
        ArgumentNullException.ThrowIfNull(fill);
        var entry = Path.Combine(root, name);
        if (File.Exists(Path.Combine(entry, completeMarker)))
        {
            return entry;
        }

        Directory.CreateDirectory(root);
        foreach (var leftover in Directory.EnumerateDirectories(root, TemporaryPrefix + "*"))
        {
            Directory.Delete(leftover, recursive: true);
        }

        if (Directory.Exists(entry))
        {
            Directory.Delete(entry, recursive: true);
        }

        var temporary = Path.Combine(root, $"{TemporaryPrefix}{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temporary);
        try
        {
            fill(temporary);
            if (!File.Exists(Path.Combine(temporary, completeMarker)))
            {
                throw new DevImageException($"filling the cache entry {entry} left no {completeMarker}");
            }

            Directory.Move(temporary, entry);
            return entry;
        }
        finally
        {
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
        }
    }

    /// <summary>Whether <paramref name="directory"/> is a fill in progress (or a killed one's leftover), not an entry.</summary>
    public static bool IsTemporary(string directory) => Path.GetFileName(directory).StartsWith(TemporaryPrefix, StringComparison.Ordinal);
}
