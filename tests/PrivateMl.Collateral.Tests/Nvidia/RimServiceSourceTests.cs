using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Nvidia;
using PrivateMl.Collateral.Tests.Fakes;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Nvidia;

public sealed class RimServiceSourceTests : IAsyncLifetime
{
    private const string DriverId = "NV_GPU_DRIVER_GH100_550.144.03";
    private const string VbiosId = "NV_GPU_VBIOS_1010_0200_882_960074001A";

    private static readonly Dictionary<string, string> Files = new()
    {
        [DriverId] = "nvidia/rims/NV_GPU_DRIVER_GH100_550.144.03.xml",
        [VbiosId] = "nvidia/rims/NV_GPU_VBIOS_1010_0200_882_960074001A.swidtag",
    };

    private readonly HttpClient http = new();
    private FakeRimService service = null!;
    private string cacheDir = null!;

    public async ValueTask InitializeAsync()
    {
        service = await FakeRimService.StartAsync(Files.ToDictionary(f => f.Key, f => SharedTestData.ReadBytes(f.Value)));
        cacheDir = Path.Combine(Path.GetTempPath(), "privateml-rim-cache-" + Guid.NewGuid().ToString("N"));
    }

    public async ValueTask DisposeAsync()
    {
        http.Dispose();
        await service.DisposeAsync();
        if (Directory.Exists(cacheDir))
        {
            Directory.Delete(cacheDir, recursive: true);
        }
    }

    [Theory]
    [InlineData(DriverId)]
    [InlineData(VbiosId)]
    public void FetchedBytesEqualTheFile(string id)
    {
        var source = new RimServiceSource(http, service.BaseAddress);

        var bytes = source.Find(id);

        Assert.Equal(SharedTestData.ReadBytes(Files[id]), bytes);
        Assert.Equal(["/v1/rim/" + id], service.Requests);
    }

    [Fact]
    public void TrailingRoutePathInBaseAddressIsTolerated()
    {
        var source = new RimServiceSource(http, new Uri(service.BaseAddress, "/v1/rim/"));

        Assert.Equal(SharedTestData.ReadBytes(Files[DriverId]), source.Fetch(DriverId));
    }

    [Fact]
    public void NotFoundIsNullFromFindAndTypedFromFetch()
    {
        var source = new RimServiceSource(http, service.BaseAddress);

        Assert.Null(source.Find("NV_GPU_DRIVER_GH100_999.99.99"));
        var ex = Assert.Throws<AttestationException>(() => source.Fetch("NV_GPU_DRIVER_GH100_999.99.99"));
        Assert.Equal(ErrorCode.RimNotFound, ex.Code);
    }

    [Theory]
    [InlineData(RimServiceFault.ServerError, ErrorCode.CollateralUnavailable)]
    [InlineData(RimServiceFault.MalformedJson, ErrorCode.CollateralMalformed)]
    [InlineData(RimServiceFault.Oversized, ErrorCode.CollateralMalformed)]
    [InlineData(RimServiceFault.WrongId, ErrorCode.CollateralMalformed)]
    [InlineData(RimServiceFault.RimNotBase64, ErrorCode.CollateralMalformed)]
    public void ServiceFaultsAreTypedErrors(RimServiceFault fault, ErrorCode expected)
    {
        service.Fault = fault;
        var source = new RimServiceSource(http, service.BaseAddress);

        var ex = Assert.Throws<AttestationException>(() => source.Find(DriverId));

        Assert.Equal(expected, ex.Code);
    }

    [Fact]
    public void UnreachableServiceIsUnavailable()
    {
        var source = new RimServiceSource(http, new Uri("http://127.0.0.1:1"));

        var ex = Assert.Throws<AttestationException>(() => source.Find(DriverId));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
    }

    [Theory]
    [InlineData("../etc/passwd")]
    [InlineData("a/b")]
    [InlineData("")]
    [InlineData("x?y=1")]
    public void IdsThatCouldEscapeTheRouteOrCacheAreRefused(string id)
    {
        var source = new RimServiceSource(http, service.BaseAddress);

        var ex = Assert.Throws<AttestationException>(() => source.Find(id));

        Assert.Equal(ErrorCode.RimMalformed, ex.Code);
        Assert.Empty(service.Requests);
    }

    [Fact]
    public async Task CacheServesTheSecondRequestWithoutTheServer()
    {
        var expected = SharedTestData.ReadBytes(Files[DriverId]);
        var source = new CachingRimSource(new RimServiceSource(http, service.BaseAddress), cacheDir);

        var first = source.Find(DriverId);
        await service.DisposeAsync();
        var second = new CachingRimSource(new RimServiceSource(http, service.BaseAddress), cacheDir).Find(DriverId);

        Assert.Equal(expected, first);
        Assert.Equal(expected, second);
        Assert.Equal(expected, File.ReadAllBytes(source.PathOf(DriverId)));
        Assert.Single(service.Requests);
    }

    [Fact]
    public void StaleEntryIsFetchedAgainAndServedWhenTheRefetchFails()
    {
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        var source = new CachingRimSource(new RimServiceSource(http, service.BaseAddress), cacheDir, TimeSpan.FromDays(30), clock);
        Assert.NotNull(source.Find(DriverId));

        Assert.NotNull(source.Find(DriverId));
        Assert.Single(service.Requests);

        clock.Now += TimeSpan.FromDays(31);
        service.Fault = RimServiceFault.ServerError;
        var stale = source.Find(DriverId);

        Assert.Equal(2, service.Requests.Count);
        Assert.Equal(SharedTestData.ReadBytes(Files[DriverId]), stale);
    }

    [Fact]
    public void FaultsWithoutACachedCopyPropagateAndCacheNothing()
    {
        service.Fault = RimServiceFault.MalformedJson;
        var source = new CachingRimSource(new RimServiceSource(http, service.BaseAddress), cacheDir);

        var ex = Assert.Throws<AttestationException>(() => source.Find(DriverId));

        Assert.Equal(ErrorCode.CollateralMalformed, ex.Code);
        Assert.False(File.Exists(source.PathOf(DriverId)));
        Assert.Null(source.Find("NV_GPU_DRIVER_GH100_999.99.99"));
    }
}
