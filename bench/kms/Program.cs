using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Kms;
using PrivateMl.Kms.Hosting;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Simulator;

// KMS throughput (issue 9): GetAppKey requests per second where every request is a new TLS connection with an RA-TLS
// client certificate, so each one pays the handshake, DCAP quote verification (ECDSA chain, QE report, quote
// signature, TCB matching), report_data binding, event-log replay, policy and key derivation. Baseline: GetMeta over a
// new TLS connection without a client certificate (handshake and JSON only). The KMS runs --simulate on loopback, in
// this process; the client certificates (one per worker, each with its own simulated CVM quote) are made beforehand.
//   dotnet run -c Release --project bench/kms -- [--seconds 10] [--levels 1,4,16]
var seconds = ArgValue("--seconds", 10);
var levels = (ArgText("--levels") ?? "1,4,16").Split(',').Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToArray();

var directory = Directory.CreateTempSubdirectory("privateml-kms-bench-").FullName;
try
{
    var simulator = Path.Combine(directory, "tdx-simulator");
    using var kmsTd = await SimulatedKmsTd.OpenAsync(simulator, TimeProvider.System);
    var options = new KmsOptions
    {
        StateDirectory = Path.Combine(directory, "kms"),
        ListenUrl = new Uri("https://127.0.0.1:0"),
        Simulated = true,
        QuoteSource = kmsTd.QuoteSource,
    };
    await using var app = await KmsHost.BuildAsync(options, kmsTd.Trust, TimeProvider.System, configureLogging: l => l.SetMinimumLevel(LogLevel.Error));
    await app.StartAsync();
    var url = new Uri(app.Urls.Single());
    X509Certificate2 rootCa;
    using (var bootstrap = new KmsClient(url))
    {
        rootCa = X509Certificate2.CreateFromPem((await bootstrap.GetTempCaCertAsync(CancellationToken.None)).CaCertPem);
    }

    var certificates = new List<X509Certificate2>();
    for (var i = 0; i < levels.Max(); i++)
    {
        certificates.Add(await CvmCertificateAsync(simulator, i));
    }

    Console.WriteLine($"# kms bench: {Environment.ProcessorCount} cores, load average {File.ReadAllText("/proc/loadavg").Trim()}, .NET {Environment.Version}, {seconds} s per run, SIMULATED quotes");
    Console.WriteLine("| call | workers | requests/s | p50 ms | p99 ms | samples | errors |");
    Console.WriteLine("|---|---|---|---|---|---|---|");
    foreach (var workers in levels)
    {
        await RunAsync("GetMeta (TLS, no client cert)", workers, TimeSpan.FromSeconds(1), _ => null, "GetMeta"); // warm-up
        await RunAsync("GetAppKey (RA-TLS)", workers, TimeSpan.FromSeconds(1), w => certificates[w], "GetAppKey");
        Print(await RunAsync("GetMeta (TLS, no client cert)", workers, TimeSpan.FromSeconds(seconds), _ => null, "GetMeta"));
        Print(await RunAsync("GetAppKey (RA-TLS)", workers, TimeSpan.FromSeconds(seconds), w => certificates[w], "GetAppKey"));
    }

    await app.StopAsync();

    async Task<Result> RunAsync(string name, int workers, TimeSpan duration, Func<int, X509Certificate2?> certificateOf, string method)
    {
        var latencies = new List<double>[workers];
        var errors = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            latencies[w] = [];
            while (clock.Elapsed < duration)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    // A new client = a new TLS handshake (and, for GetAppKey, a full RA-TLS verification).
                    using var client = new KmsClient(url, new KmsClientOptions { ClientCertificate = certificateOf(w), TrustedRootCa = rootCa });
                    using var response = await client.CallAsync(method, null, CancellationToken.None);
                    latencies[w].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
                catch (KmsClientException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })));
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new Result(name, workers, all.Length / clock.Elapsed.TotalSeconds, Percentile(all, 0.50), Percentile(all, 0.99), all.Length, errors);
    }
}
finally
{
    Directory.Delete(directory, recursive: true);
}

static void Print(Result r) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"| {r.Name} | {r.Workers} | {r.RequestsPerSecond:0.0} | {r.P50:0.00} | {r.P99:0.00} | {r.Samples} | {r.Errors} |"));

static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

// One simulated CVM of the same platform per worker, each with its own app identity and quote.
static async Task<X509Certificate2> CvmCertificateAsync(string simulator, int index)
{
    using var device = SimulatedTdxDevice.InMemory(SimulatedTdxPlatform.Load(simulator), TimeProvider.System);
    using var log = RuntimeEventLog.Open(device, new RuntimeEventLogOptions { LogFilePath = null, BootEvents = SimulatedBoot.BootEvents });
    var composeHash = SHA256.HashData(Encoding.UTF8.GetBytes($"{{\"name\":\"bench-app-{index}\"}}"));
    await log.EmitAsync(DstackEventNames.AppId, composeHash.AsMemory(0, 20));
    await log.EmitAsync(DstackEventNames.ComposeHash, composeHash);
    await log.EmitAsync(DstackEventNames.InstanceId, RandomNumberGenerator.GetBytes(20));
    await log.EmitAsync(DstackEventNames.SystemReady, ReadOnlyMemory<byte>.Empty);
    return await RaTlsCertificates.CreateClientAsync(
        RaTlsCertificates.FromEventLog(log), TimeProvider.System.GetUtcNow(), TimeSpan.FromMinutes(30), null, RandomNumberGenerator.Create(), CancellationToken.None);
}

int ArgValue(string name, int fallback) => ArgText(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? ArgText(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}

internal sealed record Result(string Name, int Workers, double RequestsPerSecond, double P50, double P99, int Samples, int Errors);
