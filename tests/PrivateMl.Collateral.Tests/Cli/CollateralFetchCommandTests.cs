using PrivateMl.Cli;
using PrivateMl.Collateral.Tests.Fakes;
using PrivateMl.Testing;

namespace PrivateMl.Collateral.Tests.Cli;

public sealed class CollateralFetchCommandTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("privateml-fetch-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("tdx/dcap-qvl/tdx_quote", CollateralFiles.Tdx)]
    [InlineData("tdx/dcap-qvl/sgx_quote", CollateralFiles.Sgx)]
    [InlineData("tdx/dcap-qvl/quote-from-tappd.hex", CollateralFiles.Tdx)]
    public async Task Fetches_TheQuotesCollateral_IntoADcapQvlFile(string quote, string collateralFile)
    {
        await using var pccs = await FakePccs.StartAsync(CollateralFiles.Load(collateralFile));
        var output = Path.Combine(directory, "collateral.json");

        var exit = await Program.BuildRoot()
            .Parse(["collateral", "fetch", SharedTestData.PathOf(quote), "--pccs", pccs.BaseAddress.ToString(), "-o", output])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(0, exit);
        Assert.Equal(SharedTestData.ReadText(collateralFile).TrimEnd('\n'), File.ReadAllText(output));
    }

    [Fact]
    public async Task Exits1_WhenThePccsHasNoCollateral()
    {
        await using var pccs = await FakePccs.StartAsync(CollateralFiles.Load(CollateralFiles.Sgx)); // wrong platform for this quote
        var output = Path.Combine(directory, "collateral.json");

        var exit = await Program.BuildRoot()
            .Parse(["collateral", "fetch", SharedTestData.PathOf("tdx/dcap-qvl/tdx_quote"), "--pccs", pccs.BaseAddress.ToString(), "-o", output])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(1, exit);
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("not a quote at all")]
    [InlineData("0300")]
    public async Task Exits2_ForAFileThatIsNotAQuote(string content)
    {
        var quote = Path.Combine(directory, "quote.txt");
        File.WriteAllText(quote, content);

        var exit = await Program.BuildRoot()
            .Parse(["collateral", "fetch", quote, "--pccs", "http://127.0.0.1:9/", "-o", Path.Combine(directory, "out.json")])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(2, exit);
    }
}
