using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevImage;

/// <summary>The SIMULATED platform build-dev shares between the guest and the host KMS: made once, then reused as is.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DevSimulatorTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("pml-devsim-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Prepare_CreatesOnce_ThenReadsTheSamePlatform()
    {
        var directory = Path.Combine(_root, "tdx-simulator");
        Assert.False(DevSimulator.Exists(directory));

        var first = DevSimulator.Prepare(directory);
        var second = DevSimulator.Prepare(directory);

        Assert.True(DevSimulator.Exists(directory));
        Assert.Contains(first.Files, f => f.Name == "root-ca.crt");
        Assert.Equal(first.Files.Select(f => f.Name), second.Files.Select(f => f.Name));
        Assert.All(first.Files.Zip(second.Files), pair => Assert.Equal(pair.First.Bytes, pair.Second.Bytes));
    }

    [Fact]
    public void CopyTo_GivesTheSameRoot_OwnerOnly_AndReplacesWhatWasThere()
    {
        var source = DevSimulator.Prepare(Path.Combine(_root, "a"));
        var destination = Path.Combine(_root, "copy");
        Directory.CreateDirectory(destination);
        File.WriteAllText(Path.Combine(destination, "stale"), "x");

        source.CopyTo(destination);

        Assert.False(File.Exists(Path.Combine(destination, "stale")));
        Assert.Equal(DevSimulator.RootFingerprint(source.Directory), DevSimulator.RootFingerprint(destination));
        Assert.All(Directory.EnumerateFiles(destination), f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
        Assert.NotEqual(DevSimulator.RootFingerprint(source.Directory), DevSimulator.RootFingerprint(DevSimulator.Prepare(Path.Combine(_root, "b")).Directory));
    }
}
