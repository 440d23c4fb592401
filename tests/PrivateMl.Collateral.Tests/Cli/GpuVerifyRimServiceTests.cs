using PrivateMl.Cli;
using PrivateMl.Collateral.Tests.Nvidia;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Cli;

/// <summary><c>privateml gpu verify --rim-service URL [--rim-cache DIR]</c> against the loopback RIM service.</summary>
public sealed class GpuVerifyRimServiceTests : IDisposable
{
    private const string Payload = "nvidia/near/nanogpt-20260610.nvidia_payload.json";
    private const string Nonce = "9a796732359e9324a45576a730e5a9c47bff518b8ee8bcb882d00b5b1ff6f39a";
    private const string DriverId = "NV_GPU_DRIVER_GH100_570.172.08";
    private const string OtherRim = "nvidia/rims/NV_GPU_DRIVER_GH100_550.144.03.xml";

    private readonly string directory = Directory.CreateTempSubdirectory("privateml-rimcli-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public async Task FetchesTheReportsRims_AndCachesThem()
    {
        // The service has no genuine RIM for this payload's driver, so it serves another (signed) driver RIM under
        // that ID: the fetch and cache path run end to end and the verifier rejects the version mismatch.
        await using var service = await FakeRimService.StartAsync(new Dictionary<string, byte[]> { [DriverId] = SharedTestData.ReadBytes(OtherRim) });
        var cache = Path.Combine(directory, "cache");

        var exit = await Run("--rim-service", service.BaseAddress.ToString(), "--rim-cache", cache);

        Assert.Equal(1, exit);
        Assert.Contains("/v1/rim/" + DriverId, service.Requests);
        Assert.Contains(service.Requests, r => r.StartsWith("/v1/rim/NV_GPU_VBIOS_", StringComparison.Ordinal));
        Assert.Equal(SharedTestData.ReadBytes(OtherRim), File.ReadAllBytes(Path.Combine(cache, DriverId + ".xml")));
    }

    [Fact]
    public async Task Exits1_WhenTheRimServiceFails()
    {
        await using var service = await FakeRimService.StartAsync(new Dictionary<string, byte[]> { [DriverId] = SharedTestData.ReadBytes(OtherRim) });
        service.Fault = RimServiceFault.ServerError;

        var exit = await Run("--rim-service", service.BaseAddress.ToString());

        Assert.Equal(1, exit);
        Assert.NotEmpty(service.Requests);
    }

    [Theory]
    [InlineData("--rim-service", "not a url")]
    [InlineData("--rim-service", "ftp://127.0.0.1/")]
    [InlineData("--rim-cache", "somewhere")]
    public async Task Exits2_ForBadRimServiceOptions(string option, string value)
    {
        Assert.Equal(2, await Run(option, value));
    }

    private static Task<int> Run(params string[] extra) =>
        Program.BuildRoot()
            .Parse(["gpu", "verify", SharedTestData.PathOf(Payload), "--nonce", Nonce, "--at", "2026-06-10T02:00:00Z", .. extra])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
}
