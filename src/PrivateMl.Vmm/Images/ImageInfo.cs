using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace PrivateMl.Vmm.Images;

/// <summary>An image's <c>metadata.json</c>, dstack's <c>ImageInfo</c> (dstack.md §11.4); paths relative to the image directory.</summary>
public sealed record ImageMetadata
{
    [JsonPropertyName("cmdline")] public string? Cmdline { get; init; }

    [JsonPropertyName("kernel")] public string Kernel { get; init; } = "";

    [JsonPropertyName("initrd")] public string Initrd { get; init; } = "";

    [JsonPropertyName("hda")] public string? Hda { get; init; }

    [JsonPropertyName("rootfs")] public string? Rootfs { get; init; }

    [JsonPropertyName("bios")] public string? Bios { get; init; }

    [JsonPropertyName("rootfs_hash")] public string? RootfsHash { get; init; }

    [JsonPropertyName("shared_ro")] public bool SharedReadOnly { get; init; }

    [JsonPropertyName("version")] public string Version { get; init; } = "";

    [JsonPropertyName("is_dev")] public bool IsDev { get; init; }

    /// <summary>(major, minor, patch) of <see cref="Version"/>, or null when it is not <c>X.Y.Z…</c>.</summary>
    public (int Major, int Minor, int Patch)? VersionTuple()
    {
        var parts = Version.Split('.');
        if (parts.Length < 3)
        {
            return null;
        }

        return ushort.TryParse(parts[0], out var a) && ushort.TryParse(parts[1], out var b) && ushort.TryParse(parts[2], out var c)
            ? (a, b, c)
            : null;
    }
}

/// <summary>An image directory: its metadata and the absolute paths of its files, checked to exist.</summary>
public sealed partial class VmImage
{
    public const int MaxMetadataBytes = 64 * 1024;

    private VmImage(string name, string directory, ImageMetadata info, string? digest, string metadataText)
    {
        Name = name;
        Directory = directory;
        Info = info;
        Digest = digest;
        MetadataText = metadataText;
    }

    public string Name { get; }

    public string Directory { get; }

    public ImageMetadata Info { get; }

    /// <summary><c>digest.txt</c> (os_image_hash hex), when present.</summary>
    public string? Digest { get; }

    /// <summary>metadata.json as read (ListImages' <c>description</c> is the serialised ImageInfo).</summary>
    public string MetadataText { get; }

    public string Kernel => Path.Combine(Directory, Info.Kernel);

    public string Initrd => Path.Combine(Directory, Info.Initrd);

    public string? Bios => Info.Bios is { } b ? Path.Combine(Directory, b) : null;

    public string? Rootfs => Info.Rootfs is { } r ? Path.Combine(Directory, r) : null;

    public string? Hda => Info.Hda is { } h ? Path.Combine(Directory, h) : null;

    /// <summary>Loads <c>&lt;imagePath&gt;/&lt;name&gt;</c>; any defect is <see cref="VmmErrorCode.UnknownImage"/>.</summary>
    public static VmImage Load(string imagePath, string name)
    {
        if (!ImageName().IsMatch(name ?? ""))
        {
            throw new VmmException(VmmErrorCode.UnknownImage, $"'{name}' is not an image name (letters, digits, '.', '_', '-')");
        }

        var directory = Path.GetFullPath(Path.Combine(imagePath, name!));
        var metadataPath = Path.Combine(directory, "metadata.json");
        if (!File.Exists(metadataPath))
        {
            throw new VmmException(VmmErrorCode.UnknownImage, $"no image '{name}' (no {metadataPath})");
        }

        if (new FileInfo(metadataPath).Length > MaxMetadataBytes)
        {
            throw new VmmException(VmmErrorCode.UnknownImage, $"image '{name}': metadata.json is too large");
        }

        var text = File.ReadAllText(metadataPath);
        ImageMetadata? info;
        try
        {
            info = JsonSerializer.Deserialize<ImageMetadata>(text);
        }
        catch (JsonException e)
        {
            throw new VmmException(VmmErrorCode.UnknownImage, $"image '{name}': metadata.json does not parse: {e.Message}");
        }

        if (info is null || info.Kernel.Length == 0 || info.Initrd.Length == 0)
        {
            throw new VmmException(VmmErrorCode.UnknownImage, $"image '{name}': metadata.json lacks kernel or initrd");
        }

        if (info.Version.Length == 0)
        {
            // Older images carry the version only in the directory name, dstack[-dev]-X.Y.Z.
            var m = VersionFromName().Match(name!);
            info = info with { Version = m.Success ? m.Groups[1].Value : "" };
        }

        string? digest = null;
        var digestPath = Path.Combine(directory, "digest.txt");
        if (File.Exists(digestPath) && new FileInfo(digestPath).Length <= 1024)
        {
            digest = File.ReadAllText(digestPath).Trim();
        }

        var image = new VmImage(name!, directory, info, digest, text);
        foreach (var (what, path) in new[] { ("kernel", image.Kernel), ("initrd", image.Initrd), ("bios", image.Bios), ("rootfs", image.Rootfs), ("hda", image.Hda) })
        {
            if (path is not null && (!IsInside(directory, path) || !File.Exists(path)))
            {
                throw new VmmException(VmmErrorCode.UnknownImage, $"image '{name}': {what} {path} does not exist");
            }
        }

        return image;
    }

    /// <summary>Every loadable image under <paramref name="imagePath"/>, by name; unusable directories are skipped.</summary>
    public static IReadOnlyList<VmImage> List(string imagePath)
    {
        if (!System.IO.Directory.Exists(imagePath))
        {
            return [];
        }

        var images = new List<VmImage>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories(imagePath).Order(StringComparer.Ordinal))
        {
            try
            {
                images.Add(Load(imagePath, Path.GetFileName(dir)));
            }
            catch (VmmException)
            {
                // Not an image (dstack skips such directories too).
            }
        }

        return images;
    }

    private static bool IsInside(string directory, string path) =>
        Path.GetFullPath(path).StartsWith(directory + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex ImageName();

    [GeneratedRegex(@"^dstack(?:-dev)?-(\d+\.\d+\.\d+)")]
    private static partial Regex VersionFromName();
}
