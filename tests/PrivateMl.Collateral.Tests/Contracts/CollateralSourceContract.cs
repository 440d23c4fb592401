using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Tests.Fakes;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Contracts;

/// <summary>
/// What every <see cref="ICollateralSource"/> promises, run against each one: it hands back the bundle for the
/// platform asked about, byte for byte; it answers another platform with <c>CollateralUnavailable</c>, never with the
/// wrong collateral; a cancelled call ends in cancellation, not in a collateral error.
/// </summary>
public abstract class CollateralSourceContract : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> resources = [];

    /// <summary>A source that holds exactly the collateral of <paramref name="file"/> (a ../shared/testdata path).</summary>
    protected abstract Task<ICollateralSource> CreateAsync(string file);

    protected T Track<T>(T resource)
        where T : IAsyncDisposable
    {
        resources.Add(resource);
        return resource;
    }

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var resource in resources)
        {
            await resource.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    public static TheoryData<string> Files => new(CollateralFiles.All);

    [Theory]
    [MemberData(nameof(Files))]
    public async Task Serves_TheBundle_ByteForByte(string file)
    {
        var source = await CreateAsync(file);

        var collateral = await source.GetCollateralAsync(CollateralFiles.RequestFor(file), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(CollateralFiles.Load(file), collateral);
    }

    [Fact]
    public async Task Refuses_AnotherPlatform_AsUnavailable()
    {
        var source = await CreateAsync(CollateralFiles.Tdx);

        var ex = await Assert.ThrowsAsync<AttestationException>(() => source.GetCollateralAsync(
            new CollateralRequest("00606a000000", PckCaType.Platform, TeeType.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
    }

    [Fact]
    public async Task Ends_InCancellation_WhenCancelled()
    {
        var source = await CreateAsync(CollateralFiles.Tdx);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            source.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Tdx), cancelled.Token));
    }
}

public sealed class PccsSourceContract : CollateralSourceContract
{
    private readonly HttpClient http = new();

    protected override async Task<ICollateralSource> CreateAsync(string file)
    {
        var pccs = Track(await FakePccs.StartAsync(CollateralFiles.Load(file)));
        return new PccsCollateralSource(http, pccs.BaseAddress);
    }
}

public sealed class OfflineFileSourceContract : CollateralSourceContract
{
    protected override Task<ICollateralSource> CreateAsync(string file) =>
        Task.FromResult<ICollateralSource>(new OfflineBundleSource(SharedTestData.PathOf(file)));
}

public sealed class CachingSourceContract : CollateralSourceContract
{
    protected override Task<ICollateralSource> CreateAsync(string file)
    {
        var directory = Directory.CreateTempSubdirectory("privateml-contract-");
        Track(new DeleteOnDispose(directory.FullName));
        var inner = new OfflineBundleSource(SharedTestData.PathOf(file));
        // Inside every sample's window would need three clocks; the start of time keeps each entry fresh.
        return Task.FromResult<ICollateralSource>(new CachingCollateralSource(inner, directory.FullName, new ManualClock(DateTimeOffset.UnixEpoch)));
    }

    private sealed class DeleteOnDispose(string path) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            Directory.Delete(path, recursive: true);
            return ValueTask.CompletedTask;
        }
    }
}

public sealed class RetryingSourceContract : CollateralSourceContract
{
    protected override Task<ICollateralSource> CreateAsync(string file) =>
        Task.FromResult<ICollateralSource>(new RetryingCollateralSource(new OfflineBundleSource(SharedTestData.PathOf(file)), TimeProvider.System) { InitialDelay = TimeSpan.Zero });
}
