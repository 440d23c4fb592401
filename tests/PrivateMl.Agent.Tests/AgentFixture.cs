using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Runtime;
using PrivateMl.Tee.EventLog;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Agent.Tests;

/// <summary>
/// Starts a guest agent on temporary Unix sockets (dstack + tappd) over a given TDX device and talks to it with
/// HttpClient. Disposing stops the agent and deletes the temporary directory.
/// </summary>
internal sealed class AgentFixture : IAsyncDisposable
{
    private readonly bool _ownsDirectory;

    private AgentFixture(string directory, bool ownsDirectory, AgentOptions options, WebApplication app, SimulatedTdxDevice simulator, CountingTdxDevice device)
    {
        _ownsDirectory = ownsDirectory;
        Directory = directory;
        Options = options;
        App = app;
        Simulator = simulator;
        Device = device;
        Dstack = CreateClient(options.SocketPath!);
        Tappd = CreateClient(options.TappdSocketPath!);
    }

    public string Directory { get; }

    public AgentOptions Options { get; }

    public WebApplication App { get; }

    /// <summary>The real software TDX behind the agent.</summary>
    public SimulatedTdxDevice Simulator { get; }

    /// <summary>The device the agent talks to: the simulator, with its calls counted.</summary>
    public CountingTdxDevice Device { get; }

    public HttpClient Dstack { get; }

    public HttpClient Tappd { get; }

    /// <summary>Starts an agent; a <paramref name="directory"/> given by the caller is left in place on dispose.</summary>
    public static async Task<AgentFixture> StartAsync(Action<AgentOptions>? configure = null, string? directory = null)
    {
        var ownsDirectory = directory is null;
        directory ??= System.IO.Directory.CreateTempSubdirectory("pml-agent-").FullName;
        var options = new AgentOptions
        {
            SocketPath = Path.Combine(directory, "dstack.sock"),
            TappdSocketPath = Path.Combine(directory, "tappd.sock"),
            StateDirectory = Path.Combine(directory, "state"),
            MaxRequestBodyBytes = 64 * 1024,
        };
        configure?.Invoke(options);
        var simulator = SimulatedBoot.OpenDevice(options.StateDirectory, TimeProvider.System);
        var device = new CountingTdxDevice(simulator);
        try
        {
            var app = GuestAgentHost.Build(
                options,
                device,
                services => services.AddSingleton(RuntimeEventLog.Open(device, new RuntimeEventLogOptions { BootEvents = SimulatedBoot.BootEvents })),
                logging => logging.SetMinimumLevel(LogLevel.Warning));
            await app.StartAsync(TestContext.Current.CancellationToken);
            return new AgentFixture(directory, ownsDirectory, options, app, simulator, device);
        }
        catch
        {
            simulator.Dispose();
            throw;
        }
    }

    public static HttpClient CreateClient(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            MaxConnectionsPerServer = 256,
        };
        return new HttpClient(handler) { BaseAddress = new Uri("http://localhost") };
    }

    /// <summary>POSTs a JSON body and returns status and parsed body (asserting Content-Length and no chunking).</summary>
    public static async Task<(int Status, JsonElement Body)> PostAsync(HttpClient client, string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(path, content, TestContext.Current.CancellationToken);
        return await ReadAsync(response);
    }

    public static async Task<(int Status, JsonElement Body)> ReadAsync(HttpResponseMessage response)
    {
        Assert.NotEqual(true, response.Headers.TransferEncodingChunked);
        var bytes = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        Assert.Equal(bytes.Length, response.Content.Headers.ContentLength);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(bytes);
        return ((int)response.StatusCode, document.RootElement.Clone());
    }

    public Task<(int Status, JsonElement Body)> PostAsync(string path, string json) => PostAsync(Dstack, path, json);

    public async ValueTask DisposeAsync()
    {
        Dstack.Dispose();
        Tappd.Dispose();
        await App.StopAsync(CancellationToken.None);
        await App.DisposeAsync();
        Simulator.Dispose();
        if (!_ownsDirectory)
        {
            return;
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    public static byte[] RandomBytes(int length) => RandomNumberGenerator.GetBytes(length);
}
