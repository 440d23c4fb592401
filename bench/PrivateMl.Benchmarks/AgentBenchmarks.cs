using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Hosting;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Benchmarks;

/// <summary>
/// GetQuote round trips over the guest agent's Unix socket on the simulator (quote signing included): one client in
/// sequence, and 16 concurrent clients. Run:
/// <c>dotnet run -c Release --project bench/PrivateMl.Benchmarks -- --filter '*AgentBenchmarks*'</c>
/// </summary>
[MemoryDiagnoser]
public class AgentBenchmarks
{
    private const int ParallelClients = 16;
    private const int RequestsPerClient = 8;

    private string _directory = "";
    private WebApplication? _app;
    private SimulatedTdxDevice? _simulator;
    private HttpClient[] _clients = [];
    private byte[] _body = [];

    [GlobalSetup]
    public void Setup()
    {
        _directory = Directory.CreateTempSubdirectory("pml-bench-agent-").FullName;
        var options = new AgentOptions
        {
            SocketPath = Path.Combine(_directory, "dstack.sock"),
            TappdSocketPath = null,
            StateDirectory = Path.Combine(_directory, "state"),
        };
        _app = GuestAgentHost.BuildSimulated(options, out _simulator, configureLogging: l => l.SetMinimumLevel(LogLevel.Error));
        _app.StartAsync().GetAwaiter().GetResult();
        _clients = [.. Enumerable.Range(0, ParallelClients).Select(_ => CreateClient(options.SocketPath))];
        _body = Encoding.UTF8.GetBytes("{\"report_data\":\"" + Convert.ToHexStringLower(new byte[64]) + "\"}");
        GetQuoteAsync(_clients[0]).GetAwaiter().GetResult(); // boot + warm
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        _app?.StopAsync().GetAwaiter().GetResult();
        (_app as IAsyncDisposable)?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _simulator?.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>One GetQuote round trip (request, simulated quote, JSON response) on one connection.</summary>
    [Benchmark(Baseline = true)]
    public Task<int> GetQuote_OneClient() => GetQuoteAsync(_clients[0]);

    /// <summary>16 clients × 8 GetQuote each, concurrently; reported per request.</summary>
    [Benchmark(OperationsPerInvoke = ParallelClients * RequestsPerClient)]
    public Task GetQuote_SixteenClients() => Task.WhenAll(_clients.Select(async client =>
    {
        for (var i = 0; i < RequestsPerClient; i++)
        {
            await GetQuoteAsync(client);
        }
    }));

    private async Task<int> GetQuoteAsync(HttpClient client)
    {
        using var content = new ByteArrayContent(_body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await client.PostAsync("/GetQuote", content);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        return response.IsSuccessStatusCode ? bytes.Length : throw new InvalidOperationException($"GetQuote returned {(int)response.StatusCode}");
    }

    private static HttpClient CreateClient(string socketPath) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
            return new NetworkStream(socket, ownsSocket: true);
        },
    })
    { BaseAddress = new Uri("http://localhost") };
}
