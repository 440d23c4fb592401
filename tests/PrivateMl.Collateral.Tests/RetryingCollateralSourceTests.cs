using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Tests.Fakes;

namespace PrivateMl.Collateral.Tests;

public sealed class RetryingCollateralSourceTests
{
    [Fact]
    public async Task Retries_TransientServerErrors_ThenSucceeds()
    {
        var collateral = CollateralFiles.Load(CollateralFiles.Tdx);
        await using var pccs = await FakePccs.StartAsync(collateral);
        pccs.Inject(PccsRoute.TcbInfo, PccsFault.ServiceUnavailable, times: 2);
        using var http = new HttpClient();
        var source = new RetryingCollateralSource(new PccsCollateralSource(http, pccs.BaseAddress), TimeProvider.System) { InitialDelay = TimeSpan.Zero };

        var fetched = await source.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken);

        CollateralFiles.AssertSame(collateral, fetched);
        Assert.Equal(3, pccs.CountOf(PccsRoute.TcbInfo));
    }

    [Fact]
    public async Task GivesUp_AfterMaxAttempts_WithTheLastFailure()
    {
        await using var pccs = await FakePccs.StartAsync(CollateralFiles.Load(CollateralFiles.Tdx));
        pccs.Inject(PccsRoute.QeIdentity, PccsFault.ServerError);
        using var http = new HttpClient();
        var source = new RetryingCollateralSource(new PccsCollateralSource(http, pccs.BaseAddress), TimeProvider.System) { InitialDelay = TimeSpan.Zero, MaxAttempts = 2 };

        var ex = await Assert.ThrowsAsync<AttestationException>(() =>
            source.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(ErrorCode.CollateralUnavailable, ex.Code);
        Assert.Equal(2, pccs.CountOf(PccsRoute.QeIdentity));
    }

    [Theory]
    [InlineData(PccsFault.NotFound)]
    [InlineData(PccsFault.HtmlInsteadOfJson)]
    public async Task DoesNotRetry_PermanentFailures(PccsFault fault)
    {
        await using var pccs = await FakePccs.StartAsync(CollateralFiles.Load(CollateralFiles.Tdx));
        pccs.Inject(PccsRoute.TcbInfo, fault);
        using var http = new HttpClient();
        var source = new RetryingCollateralSource(new PccsCollateralSource(http, pccs.BaseAddress), TimeProvider.System) { InitialDelay = TimeSpan.Zero };

        await Assert.ThrowsAsync<AttestationException>(() =>
            source.GetCollateralAsync(CollateralFiles.RequestFor(CollateralFiles.Tdx), TestContext.Current.CancellationToken));

        Assert.Equal(1, pccs.CountOf(PccsRoute.TcbInfo));
    }
}
