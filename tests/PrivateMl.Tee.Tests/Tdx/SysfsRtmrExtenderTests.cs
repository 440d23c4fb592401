using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.Tdx;

public sealed class SysfsRtmrExtenderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pml-rtmr-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Writes_TheDigest_ToRtmrFile()
    {
        var file = Path.Combine(_dir, "rtmr3:sha384");
        await File.WriteAllBytesAsync(file, [], TestContext.Current.CancellationToken);
        var digest = Enumerable.Range(0, 48).Select(i => (byte)i).ToArray();

        await new SysfsRtmrExtender(_dir).ExtendAsync(3, digest, TestContext.Current.CancellationToken);

        Assert.Equal(digest, await File.ReadAllBytesAsync(file, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task MissingFile_IsNotPresent()
    {
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => new SysfsRtmrExtender(_dir).ExtendAsync(2, new byte[48], TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(TdxDeviceError.NotPresent, e.Error);
        Assert.Contains("rtmr2:sha384", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejects_WrongDigestLengthAndIndex()
    {
        var extender = new SysfsRtmrExtender(_dir);
        await Assert.ThrowsAsync<ArgumentException>(() => extender.ExtendAsync(3, new byte[47], TestContext.Current.CancellationToken).AsTask());
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => extender.ExtendAsync(4, new byte[48], TestContext.Current.CancellationToken).AsTask());
    }
}
