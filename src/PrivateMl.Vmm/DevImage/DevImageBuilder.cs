using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Runtime;

namespace PrivateMl.Vmm.DevImage;

/// <summary>What <see cref="DevImageBuilder"/> builds from.</summary>
public sealed record DevImageOptions
{
    /// <summary>The image directory to write (metadata.json, bzImage, initramfs.cpio, sha256sum.txt, digest.txt).</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Downloads, unpacked kernels and publish output kept between builds (default <c>~/.cache/privateml/dev-image</c>).</summary>
    public string CacheDirectory { get; init; } = DefaultCacheDirectory;

    /// <summary>A kernel .deb to use instead of downloading the dependency of <c>linux-image-amd64</c>.</summary>
    public string? KernelDeb { get; init; }

    /// <summary>A self-contained linux-x64 <c>privateml</c> already published (its folder); null publishes one from <see cref="SourceDirectory"/>.</summary>
    public string? PublishDirectory { get; init; }

    /// <summary>The repository (the folder holding PrivateMl.slnx) to publish <c>privateml</c> from.</summary>
    public string? SourceDirectory { get; init; }

    /// <summary>A statically linked busybox (Debian's busybox-static installs it as /bin/busybox).</summary>
    public string BusyboxPath { get; init; } = "/bin/busybox";

    /// <summary>
    /// SIMULATED: the simulated TDX platform (PKI + TD profile, a <c>tdx-simulator</c> directory) baked into the guest,
    /// so a host <c>privateml kms serve --simulate --simulator DIR</c> trusts the guest's quotes. Null uses (and
    /// creates once) <c>&lt;cache&gt;/tdx-simulator</c>.
    /// </summary>
    public string? SimulatorDirectory { get; init; }

    /// <summary>The image version in metadata.json (dstack-vmm refuses images older than 0.5.0).</summary>
    public string Version { get; init; } = "0.5.5";

    /// <summary>Progress lines (null: quiet).</summary>
    public TextWriter? Log { get; init; }

    /// <summary>How long to wait for another build that holds the cache (builds sharing a cache run one after another).</summary>
    public TimeSpan CacheLockTimeout { get; init; } = TimeSpan.FromMinutes(30);

    public static string DefaultCacheDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "privateml", "dev-image");
}

/// <summary>The image that was built (or found up to date).</summary>
/// <param name="PublishDirectory">The self-contained linux-x64 privateml that went into the image (it runs on this host too).</param>
public sealed record DevImageResult(string ImageDirectory, string OsImageHash, string KernelVersion, bool Reused, string PublishDirectory);

/// <summary>
/// Builds the development guest image (<c>privateml vmm image build-dev</c>): Debian's distribution kernel, an
/// initramfs with busybox, the virtio/9p modules, the glibc-level libraries and a self-contained <c>privateml</c>,
/// and a dstack-style <c>metadata.json</c>, <c>sha256sum.txt</c> and <c>digest.txt</c>. It needs apt-get and dpkg
/// (or <see cref="DevImageOptions.KernelDeb"/>), busybox-static and the .NET SDK (or a published
/// <see cref="DevImageOptions.PublishDirectory"/>). Every expensive step is cached: the kernel package by name, the
/// publish output by a hash of the sources, the image by a hash of all its inputs. Builds that share a cache hold its
/// lock for the whole build (<see cref="DevImageCache"/>), since each reads the entries it filled until its image is
/// written and a build of other sources removes the stale publish output.
/// </summary>
public static class DevImageBuilder
{
    public const string KernelFile = "bzImage";
    /// <summary>Not compressed: under TCG the kernel spends seconds inflating a gzip initramfs; a plain one is copied.</summary>
    public const string InitrdFile = "initramfs.cpio";
    public const string MetadataFile = "metadata.json";

    /// <summary>
    /// SIMULATED: the copy of the guest's simulated TDX platform in the image directory, for the host's
    /// <c>privateml kms serve --simulate --simulator &lt;image&gt;/tdx-simulator</c>.
    /// </summary>
    public const string SimulatorDirectoryName = SimulatedBoot.SimulatorDirectory;
    public const string CommandLine = "console=ttyS0 init=/init panic=1 net.ifnames=0 biosdevname=0 quiet";

    /// <summary>Bumped when what the builder writes changes, so older cached images are rebuilt.</summary>
    private const string BuilderRevision = "devimage-3";
    private const string InputsFile = ".inputs.sha256";

    /// <summary>Host libraries the .NET runtime, OpenSSL-backed crypto and llama.cpp load (research/dev-vm.md).</summary>
    private static readonly string[] BaseLibraries =
    [
        "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libstdc++.so.6", "libgcc_s.so.1",
        "libssl.so.3", "libcrypto.so.3", "libz.so.1",
    ];

    private static readonly string[] LibraryDirectories = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"];

    public static DevImageResult Build(DevImageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!OperatingSystem.IsLinux())
        {
            throw new DevImageException("the development image is built on Linux (it copies this machine's glibc into the guest)");
        }

        if (!File.Exists(options.BusyboxPath))
        {
            throw new DevImageException($"{options.BusyboxPath} is missing: install busybox-static (apt-get install busybox-static)");
        }

        using (DevImageCache.Lock(options.CacheDirectory, options.CacheLockTimeout, options.Log is { } log ? log.WriteLine : null))
        {
            return BuildLocked(options);
        }
    }

    private static DevImageResult BuildLocked(DevImageOptions options)
    {
        var kernel = PrepareKernel(options);
        var publish = options.PublishDirectory is { } given ? CheckPublished(given) : Publish(options);
        var modules = KernelModules.LoadOrder(kernel.ModulesDirectory, KernelModules.DevGuestRoots);
        var libraries = FindLibraries(publish, options.Log);
        var simulator = DevSimulator.Prepare(options.SimulatorDirectory ?? Path.Combine(options.CacheDirectory, SimulatorDirectoryName), options.Log);

        var inputs = InputsHash(options, kernel, publish, modules, libraries, simulator);
        var output = Path.GetFullPath(options.OutputDirectory);
        var inputsPath = Path.Combine(output, InputsFile);
        if (File.Exists(inputsPath) && File.ReadAllText(inputsPath).Trim() == inputs
            && File.Exists(Path.Combine(output, "digest.txt")) && File.Exists(Path.Combine(output, InitrdFile))
            && DevSimulator.Exists(Path.Combine(output, SimulatorDirectoryName)))
        {
            options.Log?.WriteLine($"image in {output} is up to date");
            return new DevImageResult(output, File.ReadAllText(Path.Combine(output, "digest.txt")).Trim(), kernel.Version, Reused: true, publish);
        }

        Directory.CreateDirectory(output);
        File.Delete(inputsPath);
        File.Copy(kernel.Vmlinuz, Path.Combine(output, KernelFile), overwrite: true);
        options.Log?.WriteLine($"writing {InitrdFile} ({modules.Count} modules, {libraries.Count} libraries, privateml from {publish})");
        WriteInitramfs(Path.Combine(output, InitrdFile), options.BusyboxPath, kernel.ModulesDirectory, modules, libraries, publish, simulator);
        simulator.CopyTo(Path.Combine(output, SimulatorDirectoryName));
        File.WriteAllText(Path.Combine(output, MetadataFile), Metadata(options.Version));

        var sums = new StringBuilder();
        foreach (var file in new[] { KernelFile, InitrdFile, MetadataFile })
        {
            using var stream = File.OpenRead(Path.Combine(output, file));
            sums.Append(Convert.ToHexStringLower(SHA256.HashData(stream))).Append("  ").Append(file).Append('\n');
        }

        var sumsBytes = Encoding.UTF8.GetBytes(sums.ToString());
        File.WriteAllBytes(Path.Combine(output, "sha256sum.txt"), sumsBytes);
        var digest = Convert.ToHexStringLower(SHA256.HashData(sumsBytes));
        File.WriteAllText(Path.Combine(output, "digest.txt"), digest);
        File.WriteAllText(inputsPath, inputs);
        options.Log?.WriteLine($"image written to {output} (os_image_hash {digest})");
        return new DevImageResult(output, digest, kernel.Version, Reused: false, publish);
    }

    /// <summary>metadata.json in the product's image layout (dstack-vmm ImageInfo), marked as a development image.</summary>
    public static string Metadata(string version)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("kernel", KernelFile);
            json.WriteString("cmdline", CommandLine);
            json.WriteString("initrd", InitrdFile);
            json.WriteString("version", version);
            json.WriteString("git_revision", "");
            json.WriteBoolean("shared_ro", true);
            json.WriteBoolean("is_dev", true);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private sealed record Kernel(string Version, string Vmlinuz, string ModulesDirectory, string Package);

    private static Kernel PrepareKernel(DevImageOptions options)
    {
        var cache = Path.Combine(options.CacheDirectory, "kernel");
        Directory.CreateDirectory(cache);
        string deb;
        if (options.KernelDeb is { } given)
        {
            deb = Path.GetFullPath(given);
            if (!File.Exists(deb))
            {
                throw new DevImageException($"kernel package {deb} does not exist");
            }
        }
        else
        {
            var package = KernelPackageName(options.Log);
            deb = Directory.EnumerateFiles(cache, package + "_*.deb").Order(StringComparer.Ordinal).LastOrDefault() ?? "";
            if (deb.Length == 0)
            {
                // Downloaded beside the cache and moved in whole: a killed download leaves no .deb that looks complete.
                options.Log?.WriteLine($"downloading {package}");
                var download = DevImageCache.GetOrFill(cache, "download-" + package, ".downloaded", directory =>
                {
                    HostTools.Run("apt-get", ["download", package], directory, options.Log);
                    File.WriteAllText(Path.Combine(directory, ".downloaded"), package);
                });
                var fetched = Directory.EnumerateFiles(download, package + "_*.deb").Order(StringComparer.Ordinal).LastOrDefault()
                    ?? throw new DevImageException($"apt-get download {package} left no .deb in {download}");
                deb = Path.Combine(cache, Path.GetFileName(fetched));
                File.Move(fetched, deb);
                Directory.Delete(download, recursive: true);
            }
        }

        var unpacked = DevImageCache.GetOrFill(cache, Path.GetFileNameWithoutExtension(deb), ".unpacked", directory =>
        {
            options.Log?.WriteLine($"unpacking {Path.GetFileName(deb)}");
            HostTools.Run("dpkg", ["-x", deb, directory], log: options.Log);
            File.WriteAllText(Path.Combine(directory, ".unpacked"), deb);
        });

        var vmlinuz = Directory.Exists(Path.Combine(unpacked, "boot"))
            ? Directory.EnumerateFiles(Path.Combine(unpacked, "boot"), "vmlinuz-*").FirstOrDefault()
            : null;
        var modulesRoot = Path.Combine(unpacked, "lib", "modules");
        var versionDirectory = Directory.Exists(modulesRoot) ? Directory.EnumerateDirectories(modulesRoot).FirstOrDefault() : null;
        if (vmlinuz is null || versionDirectory is null)
        {
            throw new DevImageException($"{deb} holds no boot/vmlinuz-* and lib/modules/<version>: is it a linux-image package?");
        }

        return new Kernel(Path.GetFileName(versionDirectory), vmlinuz, versionDirectory, Path.GetFileName(deb));
    }

    /// <summary>The versioned kernel package <c>linux-image-amd64</c> depends on (e.g. linux-image-6.1.0-56-amd64).</summary>
    private static string KernelPackageName(TextWriter? log)
    {
        var depends = HostTools.Run("apt-cache", ["depends", "linux-image-amd64"], log: null);
        foreach (var line in depends.Split('\n'))
        {
            var trimmed = line.Trim();
            if (trimmed.StartsWith("Depends: linux-image-", StringComparison.Ordinal))
            {
                var name = trimmed["Depends: ".Length..].Trim();
                log?.WriteLine($"kernel package: {name}");
                return name;
            }
        }

        throw new DevImageException("apt-cache knows no versioned dependency of linux-image-amd64 (run apt-get update, or give --kernel-deb FILE)");
    }

    private static string CheckPublished(string directory)
    {
        var full = Path.GetFullPath(directory);
        if (!File.Exists(Path.Combine(full, "privateml")) || !File.Exists(Path.Combine(full, "privateml.dll")))
        {
            throw new DevImageException($"{full} holds no published privateml (expected privateml and privateml.dll from dotnet publish -r linux-x64 --self-contained)");
        }

        if (!File.Exists(Path.Combine(full, "libcoreclr.so")))
        {
            throw new DevImageException($"{full} is not a self-contained linux-x64 publish (no libcoreclr.so)");
        }

        return full;
    }

    /// <summary>Publishes the CLI self-contained for linux-x64 (not trimmed: trimming breaks Kestrel, research/dev-vm.md), cached by a hash of the sources.</summary>
    private static string Publish(DevImageOptions options)
    {
        var source = options.SourceDirectory ?? FindSourceDirectory()
            ?? throw new DevImageException("no published privateml given and no source tree found (give --publish-dir DIR or --source REPO)");
        var project = Path.Combine(source, "src", "PrivateMl.Cli", "PrivateMl.Cli.csproj");
        if (!File.Exists(project))
        {
            throw new DevImageException($"{source} is not the PrivateMl repository (no src/PrivateMl.Cli/PrivateMl.Cli.csproj)");
        }

        var key = SourceHash(source)[..16];
        var publishRoot = Path.Combine(options.CacheDirectory, "publish");
        var output = PublishCached(publishRoot, key, options.Log, directory =>
        {
            options.Log?.WriteLine($"publishing privateml (self-contained linux-x64) from {source}");
            HostTools.Run(
                "dotnet",
                ["publish", project, "-c", "Release", "-r", "linux-x64", "--self-contained", "-p:PublishTrimmed=false",
                 "-p:DebugType=none", "--artifacts-path", Path.Combine(options.CacheDirectory, "artifacts"), "-o", directory, "--nologo"],
                source,
                options.Log);
        });

        // Older publishes of other source states are dead weight (the cache lock keeps other builds out meanwhile).
        foreach (var stale in Directory.EnumerateDirectories(publishRoot).Where(d => Path.GetFileName(d) != key && !DevImageCache.IsTemporary(d)))
        {
            Directory.Delete(stale, recursive: true);
        }

        return output;
    }

    /// <summary>
    /// <c>publishRoot/key</c>, published by <paramref name="publish"/> (into the directory it is given) unless a complete
    /// one is there. Call it holding the cache lock.
    /// </summary>
    internal static string PublishCached(string publishRoot, string key, TextWriter? log, Action<string> publish)
    {
        const string Marker = ".published";
        if (File.Exists(Path.Combine(publishRoot, key, Marker)))
        {
            log?.WriteLine($"reusing privateml published from unchanged sources ({key})");
        }

        return DevImageCache.GetOrFill(publishRoot, key, Marker, directory =>
        {
            publish(directory);
            File.WriteAllText(Path.Combine(directory, Marker), key);
        });
    }

    private static string? FindSourceDirectory()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "PrivateMl.slnx")))
                {
                    return dir.FullName;
                }
            }
        }

        return null;
    }

    /// <summary>SHA-256 over the paths and contents of everything that goes into the CLI build (sources, projects, props).</summary>
    internal static string SourceHash(string source)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = Directory.EnumerateFiles(Path.Combine(source, "src"), "*", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Concat(new[] { "Directory.Build.props", "Directory.Packages.props", "Directory.Build.targets", "global.json", "nuget.config", "NuGet.config" }
                .Select(f => Path.Combine(source, f)).Where(File.Exists))
            .Select(f => Path.GetRelativePath(source, f))
            .Order(StringComparer.Ordinal);
        foreach (var relative in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(relative + "\n"));
            hash.AppendData(SHA256.HashData(File.ReadAllBytes(Path.Combine(source, relative))));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The host libraries to copy: the base list plus what <c>ldd</c> says the published binaries need.</summary>
    private static IReadOnlyList<string> FindLibraries(string publish, TextWriter? log)
    {
        var found = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in BaseLibraries)
        {
            var path = LibraryDirectories.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
            if (path is not null)
            {
                found[name] = path;
            }
            else if (name is not ("libz.so.1" or "librt.so.1"))
            {
                throw new DevImageException($"{name} is not on this machine ({string.Join(", ", LibraryDirectories)}); the guest needs it");
            }
        }

        if (HostTools.Find("ldd") is not null)
        {
            var binaries = new[] { Path.Combine(publish, "privateml") }
                .Concat(Directory.EnumerateFiles(publish, "*.so", SearchOption.TopDirectoryOnly))
                .Concat(Directory.Exists(Path.Combine(publish, "runtimes", "linux-x64"))
                    ? Directory.EnumerateFiles(Path.Combine(publish, "runtimes", "linux-x64"), "*.so", SearchOption.AllDirectories)
                    : []);
            foreach (var binary in binaries)
            {
                string text;
                try
                {
                    text = HostTools.Run("ldd", [binary]);
                }
                catch (DevImageException)
                {
                    continue; // not a dynamic ELF
                }

                foreach (var line in text.Split('\n'))
                {
                    var parts = line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 3 && parts[1] == "=>" && parts[2].StartsWith('/') && !parts[2].StartsWith(publish, StringComparison.Ordinal))
                    {
                        found.TryAdd(parts[0], parts[2]);
                    }
                }
            }
        }

        log?.WriteLine($"guest libraries: {string.Join(' ', found.Keys)}");
        return [.. found.Values];
    }

    private static string InputsHash(DevImageOptions options, Kernel kernel, string publish, IReadOnlyList<string> modules, IReadOnlyList<string> libraries, DevSimulator simulator)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Text(string text) => hash.AppendData(Encoding.UTF8.GetBytes(text + "\n"));
        void FileStamp(string path)
        {
            var info = new FileInfo(path);
            Text($"{path} {info.Length} {info.LastWriteTimeUtc.Ticks}");
        }

        Text(BuilderRevision);
        Text(DevGuestInit.Script);
        Text(Metadata(options.Version));
        Text(kernel.Package);
        FileStamp(options.BusyboxPath);
        Text(File.Exists(Path.Combine(publish, ".published")) ? File.ReadAllText(Path.Combine(publish, ".published")) : publish);
        foreach (var file in Directory.EnumerateFiles(publish, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            FileStamp(file);
        }

        foreach (var module in modules)
        {
            Text(module);
        }

        foreach (var library in libraries)
        {
            FileStamp(library);
        }

        foreach (var (name, bytes) in simulator.Files)
        {
            Text(name);
            hash.AppendData(SHA256.HashData(bytes));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void WriteInitramfs(string path, string busybox, string modulesDirectory, IReadOnlyList<string> modules, IReadOnlyList<string> libraries, string publish, DevSimulator simulator)
    {
        var temporary = path + ".tmp";
        using (var archive = File.Create(temporary))
        using (var buffered = new BufferedStream(archive, 1 << 20))
        using (var cpio = new CpioNewcWriter(buffered))
        {
            foreach (var directory in new[] { "dev", "proc", "sys", "tmp", "run", "var", "root", "etc", "mnt", "lib64", "bin", "sbin", "usr/bin", "usr/sbin" })
            {
                cpio.AddDirectory(directory);
            }

            cpio.AddFile("init", Encoding.UTF8.GetBytes(DevGuestInit.Script), 0x1ED);
            cpio.AddFileFrom("bin/busybox", busybox, 0x1ED);
            cpio.AddFile("etc/hosts", "127.0.0.1 localhost\n::1 localhost\n"u8, 0x1A4);
            cpio.AddFile("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"u8, 0x1A4);
            cpio.AddFile("etc/group", "root:x:0:\n"u8, 0x1A4);

            var moduleNames = new StringBuilder();
            foreach (var module in modules)
            {
                cpio.AddFileFrom("lib/modules/" + module.Replace('\\', '/'), Path.Combine(modulesDirectory, module), 0x1A4);
                moduleNames.Append(module.Replace('\\', '/')).Append('\n');
            }

            cpio.AddFile(DevGuestInit.ModulesOrderPath, Encoding.UTF8.GetBytes(moduleNames.ToString()), 0x1A4);
            cpio.AddDirectory(DevGuestInit.SimulatorPath);
            foreach (var (name, bytes) in simulator.Files)
            {
                cpio.AddFile(DevGuestInit.SimulatorPath + "/" + name, bytes, 0x180);
            }

            foreach (var library in libraries)
            {
                cpio.AddFileFrom("lib/x86_64-linux-gnu/" + Path.GetFileName(library), library, 0x1ED);
            }

            var loader = LibraryDirectories.Select(d => Path.Combine(d, "ld-linux-x86-64.so.2")).FirstOrDefault(File.Exists)
                ?? throw new DevImageException("ld-linux-x86-64.so.2 is not on this machine");
            cpio.AddFileFrom("lib64/ld-linux-x86-64.so.2", loader, 0x1ED);
            cpio.AddSymlink("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2");

            foreach (var file in Directory.EnumerateFiles(publish, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                var relative = Path.GetRelativePath(publish, file).Replace('\\', '/');
                if (!Wanted(relative))
                {
                    continue;
                }

                var executable = relative == "privateml" || relative.EndsWith(".so", StringComparison.Ordinal) || relative == "createdump";
                cpio.AddFileFrom(DevGuestInit.AppDirectory + "/" + relative, file, executable ? 0x1EDu : 0x1A4u);
            }

            cpio.Finish();
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Publish output the guest needs: not other platforms' native libraries, debug symbols or markers.</summary>
    private static bool Wanted(string relative)
    {
        if (relative.StartsWith("runtimes/", StringComparison.Ordinal) && !relative.StartsWith("runtimes/linux-x64/", StringComparison.Ordinal))
        {
            return false;
        }

        return !relative.EndsWith(".pdb", StringComparison.Ordinal) && !relative.EndsWith(".dbg", StringComparison.Ordinal)
            && relative != ".published";
    }
}
