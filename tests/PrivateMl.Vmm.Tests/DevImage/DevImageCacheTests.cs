using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevImage;

/// <summary>
/// Builds share <c>~/.cache/privateml/dev-image</c>: the cache lock keeps a second build out while the first fills the
/// publish entry, and an entry appears only complete (filled in a temporary directory, then renamed).
/// </summary>
public sealed class DevImageCacheTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);
    private readonly string _cache = Directory.CreateTempSubdirectory("pml-devcache-").FullName;

    private string PublishRoot => Path.Combine(_cache, "publish");

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [Fact]
    public async Task TwoBuildsAtOnce_PublishOnce_AndBothGetTheCompleteOutput()
    {
        using var firstPublishing = new ManualResetEventSlim();
        using var secondWaiting = new ManualResetEventSlim();
        var publishes = 0;
        var waits = new List<string>();

        string Build(Action<string>? waiting) => Locked(waiting, () => DevImageBuilder.PublishCached(PublishRoot, "k1", null, directory =>
        {
            Interlocked.Increment(ref publishes);
            firstPublishing.Set();
            // Holds the fill open until the second build is known to be waiting for the lock.
            Assert.True(secondWaiting.Wait(Patience, TestContext.Current.CancellationToken), "the second build never waited for the cache lock");
            File.WriteAllText(Path.Combine(directory, "privateml"), "published");
            Assert.False(Directory.Exists(Path.Combine(PublishRoot, "k1")), "the entry appeared before its fill was done");
        }));

        var first = Task.Run(() => Build(null), TestContext.Current.CancellationToken);
        Assert.True(firstPublishing.Wait(Patience, TestContext.Current.CancellationToken));
        var second = Task.Run(() => Build(message =>
        {
            lock (waits)
            {
                waits.Add(message);
            }

            secondWaiting.Set();
        }), TestContext.Current.CancellationToken);

        var paths = await Task.WhenAll(first, second);

        Assert.Equal(1, publishes);
        Assert.Equal(paths[0], paths[1]);
        Assert.Equal(Path.Combine(PublishRoot, "k1"), paths[0]);
        Assert.Equal("published", File.ReadAllText(Path.Combine(paths[0], "privateml")));
        Assert.Contains(Path.Combine(_cache, DevImageCache.LockFileName), Assert.Single(waits), StringComparison.Ordinal);
        Assert.Equal([paths[0]], Directory.GetDirectories(PublishRoot));
    }

    [Fact]
    public void AKilledFillsLeftovers_AreRemoved_AndTheEntryFilledAgain()
    {
        var leftover = Directory.CreateDirectory(Path.Combine(PublishRoot, ".tmp-k1-dead")).FullName;
        var incomplete = Directory.CreateDirectory(Path.Combine(PublishRoot, "k1")).FullName;
        File.WriteAllText(Path.Combine(incomplete, "privateml"), "half");

        var path = Locked(null, () => DevImageBuilder.PublishCached(PublishRoot, "k1", null, directory => File.WriteAllText(Path.Combine(directory, "privateml"), "whole")));

        Assert.Equal("whole", File.ReadAllText(Path.Combine(path, "privateml")));
        Assert.False(Directory.Exists(leftover));
        Assert.Equal([path], Directory.GetDirectories(PublishRoot));
    }

    [Fact]
    public void AFailedFill_LeavesNoEntry_AndTheNextBuildFillsIt()
    {
        Assert.Throws<InvalidOperationException>(() => Locked(null, () =>
            DevImageBuilder.PublishCached(PublishRoot, "k1", null, directory =>
            {
                File.WriteAllText(Path.Combine(directory, "privateml"), "half");
                throw new InvalidOperationException("publish failed");
            })));
        Assert.Empty(Directory.GetDirectories(PublishRoot));

        var publishes = 0;
        for (var i = 0; i < 2; i++)
        {
            Locked(null, () => DevImageBuilder.PublishCached(PublishRoot, "k1", null, directory =>
            {
                publishes++;
                File.WriteAllText(Path.Combine(directory, "privateml"), "whole");
            }));
        }

        Assert.Equal(1, publishes);
    }

    [Fact]
    public void ALockHeldPastTheTimeout_IsATypedError()
    {
        using (DevImageCache.Lock(_cache, Patience))
        {
            var e = Assert.Throws<DevImageException>(() => DevImageCache.Lock(_cache, TimeSpan.Zero));
            Assert.Contains("another build held", e.Message, StringComparison.Ordinal);
        }

        // Released: the next build takes it at once.
        using (DevImageCache.Lock(_cache, TimeSpan.Zero))
        {
        }
    }

    private T Locked<T>(Action<string>? waiting, Func<T> fill)
    {
        using (DevImageCache.Lock(_cache, Patience, waiting))
        {
            return fill();
        }
    }
}
