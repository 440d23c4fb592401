using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Kms;
using PrivateMl.Kms.Hosting;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.Support;

/// <summary>A KMS as <c>privateml kms serve --simulate --simulator DIR</c> runs it, in process on a loopback HTTPS port.</summary>
internal sealed class RunningKms : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SimulatedKmsTd _td;

    private RunningKms(WebApplication app, SimulatedKmsTd td)
    {
        _app = app;
        _td = td;
    }

    public string Url => _app.Urls.Single();

    /// <summary>Starts a KMS over the simulated platform in <paramref name="simulatorDirectory"/> (prepared as build-dev does), keeping its keys in <paramref name="stateDirectory"/>.</summary>
    public static async Task<RunningKms> StartAsync(string simulatorDirectory, string stateDirectory, CancellationToken ct)
    {
        DevSimulator.Prepare(simulatorDirectory);
        var td = await SimulatedKmsTd.OpenAsync(simulatorDirectory, TimeProvider.System);
        var options = new KmsOptions
        {
            StateDirectory = stateDirectory,
            ListenUrl = new Uri("https://127.0.0.1:0"),
            Simulated = true,
            QuoteSource = td.QuoteSource,
        };
        try
        {
            var kms = await KmsHost.BuildAsync(options, td.Trust, TimeProvider.System, configureLogging: l => l.SetMinimumLevel(LogLevel.None), cancellationToken: ct);
            await kms.StartAsync(ct);
            return new RunningKms(kms, td);
        }
        catch
        {
            td.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _td.Dispose();
    }
}
