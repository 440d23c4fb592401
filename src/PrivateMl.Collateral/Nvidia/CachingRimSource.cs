using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral.Nvidia;

/// <summary>
/// An on-disk cache of RIMs in front of another <see cref="IRimSource"/>: <c>{directory}/{id}.xml</c> holds the exact
/// bytes the inner source returned (the XML signature covers them; the verifier checks it on every use, so a
/// tampered cache file fails verification rather than being trusted). NVIDIA re-issues RIMs under the same ID, so
/// entries older than <paramref name="maxAge"/> are fetched again; when that refetch fails with a typed error, the stale
/// copy is served (the verifier still judges it). Not-found answers are not cached.
/// </summary>
/// <param name="inner">Where misses go (typically <see cref="RimServiceSource"/>).</param>
/// <param name="directory">Cache folder; created when needed.</param>
/// <param name="maxAge">How long an entry is fresh; null keeps entries forever.</param>
/// <param name="time">Clock used for the age check; <see cref="TimeProvider.System"/> when null.</param>
public sealed class CachingRimSource(IRimSource inner, string directory, TimeSpan? maxAge = null, TimeProvider? time = null) : IRimSource
{
    /// <summary>A cache file larger than this is ignored and fetched again.</summary>
    public const int MaxEntryBytes = RimServiceSource.DefaultMaxResponseBytes;

    private readonly IRimSource inner = inner ?? throw new ArgumentNullException(nameof(inner));
    private readonly string directory = directory ?? throw new ArgumentNullException(nameof(directory));
    private readonly TimeProvider time = time ?? TimeProvider.System;

    /// <summary>The file an entry for <paramref name="rimId"/> lives in.</summary>
    public string PathOf(string rimId)
    {
        RimIds.ThrowIfInvalid(rimId);
        return Path.Combine(directory, rimId + ".xml");
    }

    /// <inheritdoc />
    public byte[]? Find(string rimId)
    {
        var path = PathOf(rimId);
        var (cached, fresh) = ReadEntry(path);
        if (cached is not null && fresh)
        {
            return cached;
        }

        byte[]? fetched;
        try
        {
            fetched = inner.Find(rimId);
        }
        catch (AttestationException) when (cached is not null)
        {
            return cached;
        }

        if (fetched is null)
        {
            return cached;
        }

        Write(path, fetched);
        return fetched;
    }

    private (byte[]? Bytes, bool Fresh) ReadEntry(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists || info.Length == 0 || info.Length > MaxEntryBytes)
            {
                return (null, false);
            }

            var bytes = File.ReadAllBytes(path);
            var fresh = maxAge is not { } age || time.GetUtcNow() - new DateTimeOffset(info.LastWriteTimeUtc, TimeSpan.Zero) <= age;
            return (bytes, fresh);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, false);
        }
    }

    private void Write(string path, byte[] bytes)
    {
        try
        {
            Directory.CreateDirectory(directory);
            var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
            File.SetLastWriteTimeUtc(path, time.GetUtcNow().UtcDateTime);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CollateralErrors.Unavailable($"RIM cache: cannot write {path}: {ex.Message}", ex);
        }
    }
}
