using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Kms.Tests.Keys;

public sealed class KeyEpochStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("privateml-kms-epochs-").FullName;
    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    [Fact]
    public void StartsAtEpoch1()
    {
        var store = new KeyEpochStore(_directory, _clock);
        Assert.Equal(1u, store.Current.Current);
        Assert.Equal([1u], store.Current.Active);
    }

    [Fact]
    public void Rotate_MakesANewCurrentEpoch_KeepingOldOnesActive_AcrossInstances()
    {
        var store = new KeyEpochStore(_directory, _clock);
        Assert.Equal(2u, store.Rotate());
        Assert.Equal(3u, store.Rotate());
        var reopened = new KeyEpochStore(_directory, _clock);
        Assert.Equal(3u, reopened.Current.Current);
        Assert.Equal([1u, 2u, 3u], reopened.Current.Active);
    }

    [Fact]
    public void Retire_RemovesTheEpoch_SeenByAnotherInstance()
    {
        var server = new KeyEpochStore(_directory, _clock);
        Assert.Equal(1u, server.Current.Current);
        var cli = new KeyEpochStore(_directory, _clock);
        cli.Rotate();
        cli.Retire(1);
        Assert.Equal(2u, server.Current.Current);
        Assert.True(server.Current.Find(1)!.IsRetired);
        Assert.Equal([2u], server.Current.Active);
    }

    [Fact]
    public void Rejects_RetiringTheCurrentOrUnknownOrRetiredEpoch()
    {
        var store = new KeyEpochStore(_directory, _clock);
        Assert.Throws<InvalidOperationException>(() => store.Retire(1));
        Assert.Throws<InvalidOperationException>(() => store.Retire(7));
        store.Rotate();
        store.Retire(1);
        Assert.Throws<InvalidOperationException>(() => store.Retire(1));
    }

    [Fact]
    public void Rejects_EpochFileWhoseCurrentEpochIsRetired()
    {
        File.WriteAllText(Path.Combine(_directory, KeyEpochStore.FileName), "{\"current\":1,\"epochs\":[{\"epoch\":1,\"created\":\"2026-01-01T00:00:00Z\",\"retired\":\"2026-01-02T00:00:00Z\"}]}");
        Assert.Throws<InvalidDataException>(() => new KeyEpochStore(_directory, _clock).Current);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
