using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Tests.Fakes;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests;

public sealed class CachingCollateralSourceTests : IDisposable
{
    // tdx_quote_collateral.json: every item current from 1750329147; the earliest nextUpdate is the PCK CRL's,
    // 1752919235 (2025-07-19T10:00:35Z), before the TCB info's 1752920163 and the QE identity's 1752921147.
    private static readonly DateTimeOffset Inside = DateTimeOffset.FromUnixTimeSeconds(1750400000);
    private static readonly DateTimeOffset PckCrlNextUpdate = DateTimeOffset.FromUnixTimeSeconds(1752919235);

    private readonly string directory = Path.Combine(Path.GetTempPath(), "privateml-cache-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Serves_FromDisk_WhileEveryItemIsCurrent()
    {
        var inner = new CountingSource(new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx)));
        var clock = new ManualClock(Inside);
        var cache = new CachingCollateralSource(inner, directory, clock);
        var request = CollateralFiles.RequestFor(CollateralFiles.Tdx);

        var first = await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);
        clock.Now = PckCrlNextUpdate.AddSeconds(-1);
        var second = await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(1, inner.Calls);
        Assert.True(File.Exists(cache.PathFor(request)));
        CollateralFiles.AssertSame(first, second);
        CollateralFiles.AssertSame(CollateralFiles.Load(CollateralFiles.Tdx), second);
    }

    [Fact]
    public async Task Refetches_AtTheEarliestNextUpdate()
    {
        var inner = new CountingSource(new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx)));
        var clock = new ManualClock(Inside);
        var cache = new CachingCollateralSource(inner, directory, clock);
        var request = CollateralFiles.RequestFor(CollateralFiles.Tdx);
        await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        clock.Now = PckCrlNextUpdate; // the PCK CRL is no longer current, though the TCB info still is
        await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(2, inner.Calls);
    }

    [Fact]
    public async Task Honours_RefreshMargin()
    {
        var inner = new CountingSource(new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx)));
        var clock = new ManualClock(Inside);
        var cache = new CachingCollateralSource(inner, directory, clock) { RefreshMargin = TimeSpan.FromHours(1) };
        var request = CollateralFiles.RequestFor(CollateralFiles.Tdx);
        await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        clock.Now = PckCrlNextUpdate.AddMinutes(-30);
        await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(2, inner.Calls);
    }

    [Fact]
    public async Task NeverServesStale_WhenTheInnerSourceFails()
    {
        var inner = new CountingSource(new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx)));
        var clock = new ManualClock(Inside);
        var cache = new CachingCollateralSource(inner, directory, clock);
        var request = CollateralFiles.RequestFor(CollateralFiles.Tdx);
        await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        clock.Now = PckCrlNextUpdate.AddDays(1);
        inner.Fail = true;
        var ex = await Assert.ThrowsAsync<AttestationException>(() => cache.GetCollateralAsync(request, TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
    }

    [Fact]
    public async Task DoesNotFile_CollateralThatIsAlreadyStale()
    {
        var inner = new CountingSource(new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx)));
        var clock = new ManualClock(PckCrlNextUpdate.AddDays(1));
        var cache = new CachingCollateralSource(inner, directory, clock);
        var request = CollateralFiles.RequestFor(CollateralFiles.Tdx);

        var returned = await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        Assert.NotNull(returned); // handed on for the verifier to reject as expired, but not cached
        Assert.False(File.Exists(cache.PathFor(request)));
    }

    [Fact]
    public async Task Replaces_ADamagedEntry()
    {
        var inner = new CountingSource(new OfflineBundleSource(SharedTestData.PathOf(CollateralFiles.Tdx)));
        var cache = new CachingCollateralSource(inner, directory, new ManualClock(Inside));
        var request = CollateralFiles.RequestFor(CollateralFiles.Tdx);
        Directory.CreateDirectory(directory);
        File.WriteAllText(cache.PathFor(request), "{\"truncated\":");

        var collateral = await cache.GetCollateralAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(1, inner.Calls);
        CollateralFiles.AssertSame(CollateralFiles.Load(CollateralFiles.Tdx), collateral);
        CollateralFiles.AssertSame(collateral, await new OfflineBundleSource(cache.PathFor(request)).GetCollateralAsync(request, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task KeepsEntriesApart_PerPlatform()
    {
        var inner = new CountingSource(new OfflineBundleSource(Path.GetDirectoryName(SharedTestData.PathOf(CollateralFiles.Tdx))!));
        var cache = new CachingCollateralSource(inner, directory, new ManualClock(Inside));

        var tdx = await cache.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken);
        var sgx = await cache.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Sgx), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(CollateralFiles.Load(CollateralFiles.Tdx), tdx);
        CollateralFiles.AssertSame(CollateralFiles.Load(CollateralFiles.Sgx), sgx);
        Assert.Equal(2, Directory.GetFiles(directory, "*.json").Length);
    }

    private sealed class CountingSource(ICollateralSource inner) : ICollateralSource
    {
        public int Calls { get; private set; }

        public bool Fail { get; set; }

        public Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
        {
            Calls++;
            return Fail
                ? throw new AttestationException(ErrorCode.CollateralUnavailable, "PCCS down (test)")
                : inner.GetCollateralAsync(request, cancellationToken);
        }
    }
}
