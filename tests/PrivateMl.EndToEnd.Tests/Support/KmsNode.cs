using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Keys;
using PrivateMl.Kms;
using PrivateMl.Kms.Hosting;
using PrivateMl.Kms.Policy;

namespace PrivateMl.EndToEnd.Tests.Support;

/// <summary>
/// A KMS as <c>privateml kms serve --simulate --simulator &lt;image&gt;/tdx-simulator --policy FILE</c> runs it: its
/// own SIMULATED TD on the image's platform, HTTPS on a loopback port the OS picks, its root keys in a state directory
/// that survives a restart.
/// </summary>
internal sealed class KmsNode : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SimulatedKmsTd _td;

    private KmsNode(WebApplication app, SimulatedKmsTd td, string caPublicKey, string k256PublicKey)
    {
        _app = app;
        _td = td;
        Url = new Uri(app.Urls.Single());
        CaPublicKey = caPublicKey;
        K256PublicKey = k256PublicKey;
    }

    public Uri Url { get; }

    /// <summary>The root CA's SubjectPublicKeyInfo (hex), as GetMeta's <c>bootstrap_info.ca_pubkey</c> says: the id a guest measures as its key provider.</summary>
    public string CaPublicKey { get; }

    /// <summary>The root secp256k1 public key (hex) that signs env-encryption keys (GetMeta's <c>k256_pubkey</c>).</summary>
    public string K256PublicKey { get; }

    public static async Task<KmsNode> StartAsync(string simulatorDirectory, string stateDirectory, KmsPolicy policy, CancellationToken ct)
    {
        var td = await SimulatedKmsTd.OpenAsync(simulatorDirectory, TimeProvider.System);
        WebApplication? app = null;
        try
        {
            var options = new KmsOptions
            {
                StateDirectory = stateDirectory,
                ListenUrl = new Uri("https://127.0.0.1:0"),
                Policy = policy,
                Simulated = true,
                QuoteSource = td.QuoteSource,
            };
            app = await KmsHost.BuildAsync(options, td.Trust, TimeProvider.System, configureLogging: l => l.SetMinimumLevel(LogLevel.None), cancellationToken: ct);
            await app.StartAsync(ct);
            using var client = new KmsClient(new Uri(app.Urls.Single()));
            using var meta = await client.CallAsync("GetMeta", null, ct);
            var bootstrap = meta.RootElement.GetProperty("bootstrap_info");
            return new KmsNode(app, td, Text(bootstrap, "ca_pubkey"), Text(meta.RootElement, "k256_pubkey"));
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync();
            }

            td.Dispose();
            throw;
        }
    }

    private static string Text(JsonElement element, string name) => element.GetProperty(name).GetString()!;

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(CancellationToken.None);
        await _app.DisposeAsync();
        _td.Dispose();
    }
}
