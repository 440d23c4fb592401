using System.Security.Cryptography;
using PrivateMl.Agent.Runtime;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Vmm.DevImage;

/// <summary>
/// SIMULATED, development only: the one simulated TDX platform (its PKI root, PCK and QE keys, and the TD profile of
/// the simulated boot) that a development image's guest makes its quotes with. Dstack's trust comes from Intel's root,
/// which both the CVM's quotes and the KMS's verifier share; without TDX the host makes that shared root itself: it
/// creates the platform once, bakes it into the image (<see cref="DevGuestInit.SimulatorPath"/>) and keeps a copy next
/// to the image (<c>&lt;image&gt;/tdx-simulator</c>) for <c>privateml kms serve --simulate --simulator DIR</c>. Nothing it
/// signs means anything outside that pairing: every certificate in it says SIMULATED, and only a KMS or verifier
/// started with --simulate / --allow-simulated accepts it.
/// </summary>
public sealed class DevSimulator
{
    /// <summary>Largest simulator file copied (the files are a few KiB of PEM and JSON).</summary>
    public const int MaxFileBytes = 64 * 1024;

    private DevSimulator(string directory, IReadOnlyList<(string Name, byte[] Bytes)> files)
    {
        Directory = directory;
        Files = files;
    }

    /// <summary>Where the platform was read from.</summary>
    public string Directory { get; }

    /// <summary>The platform's files (name, content), in name order; without the simulator's runtime RTMR state.</summary>
    public IReadOnlyList<(string Name, byte[] Bytes)> Files { get; }

    /// <summary>True when <paramref name="directory"/> holds a simulated platform (PKI and profile).</summary>
    public static bool Exists(string directory) => SimulatedTdxPlatform.Exists(directory);

    /// <summary>
    /// Reads the platform in <paramref name="directory"/>, creating it first (with the simulated boot's RTMR0–2, so
    /// the guest agent and the KMS accept it) when absent.
    /// </summary>
    /// <exception cref="DevImageException">The directory holds files that are not a usable simulated platform.</exception>
    public static DevSimulator Prepare(string directory, TextWriter? log = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var full = Path.GetFullPath(directory);
        if (!Exists(full))
        {
            log?.WriteLine($"creating the SIMULATED TDX platform the dev guest and a --simulate KMS share: {full}");
            using var platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions { Profile = SimulatedBoot.Profile() }, DateTimeOffset.UtcNow);
            platform.Save(full);
        }

        var files = new List<(string, byte[])>();
        foreach (var path in System.IO.Directory.EnumerateFiles(full).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(path);
            var info = new FileInfo(path);
            if (name == "rtmr.json" || info.LinkTarget is not null)
            {
                continue; // a device's runtime measurements, not the platform; links are not followed
            }

            if (info.Length > MaxFileBytes)
            {
                throw new DevImageException($"{path} is {info.Length} bytes; a simulator file is at most {MaxFileBytes}");
            }

            files.Add((name, File.ReadAllBytes(path)));
        }

        return new DevSimulator(full, files);
    }

    /// <summary>Writes the platform's files into <paramref name="destination"/> (created, files 0600), replacing what was there.</summary>
    public void CopyTo(string destination)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        if (System.IO.Directory.Exists(destination))
        {
            System.IO.Directory.Delete(destination, recursive: true);
        }

        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(destination);
        }
        else
        {
            System.IO.Directory.CreateDirectory(destination, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        foreach (var (name, bytes) in Files)
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using var file = new FileStream(Path.Combine(destination, name), options);
            file.Write(bytes);
        }
    }

    /// <summary>SHA-256 of the simulated root certificate's DER (what the console prints so host and guest can be matched).</summary>
    public static string RootFingerprint(string directory)
    {
        using var platform = SimulatedTdxPlatform.Load(directory);
        return Convert.ToHexStringLower(SHA256.HashData(platform.Pki.RootCertificate.RawData));
    }
}
