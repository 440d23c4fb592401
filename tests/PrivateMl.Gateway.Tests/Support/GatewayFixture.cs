using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Hosting;
using PrivateMl.Inference.Upstream;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Gateway.Tests.Support;

/// <summary>
/// A whole node in simulation: a real upstream on loopback (<see cref="FakeUpstream"/>), the real guest agent over
/// the software TDX on a temporary Unix socket, and the gateway in front, talking to both like in production.
/// </summary>
internal sealed class GatewayFixture : IAsyncDisposable
{
    public const string Token = "test-token-0123456789";

    private readonly List<WebApplication> _gateways = [];

    private GatewayFixture(string directory, FakeUpstream upstream, WebApplication agentApp, SimulatedTdxDevice device, DstackAgentClient agent)
    {
        Directory = directory;
        Upstream = upstream;
        AgentApp = agentApp;
        Device = device;
        Agent = agent;
    }

    public string Directory { get; }

    public FakeUpstream Upstream { get; }

    public WebApplication AgentApp { get; }

    public SimulatedTdxDevice Device { get; }

    public DstackAgentClient Agent { get; }

    public WebApplication Gateway { get; private set; } = null!;

    public HttpClient Client { get; private set; } = null!;

    public IUpstreamBackend Backend { get; private set; } = null!;

    /// <summary>What carries the gateways' requests to the upstream (serve's default unless a test names one).</summary>
    public UpstreamClient UpstreamClient { get; private init; }

    public static async Task<GatewayFixture> StartAsync(Action<GatewayOptions>? configure = null, Action<IServiceCollection>? services = null, UpstreamClient client = UpstreamClient.Auto)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("pml-gw-").FullName;
        var upstream = await FakeUpstream.StartAsync();
        var agentOptions = new AgentOptions
        {
            SocketPath = Path.Combine(directory, "dstack.sock"),
            TappdSocketPath = null,
            StateDirectory = Path.Combine(directory, "agent-state"),
        };
        var agentApp = GuestAgentHost.BuildSimulated(agentOptions, out var device, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        await agentApp.StartAsync(TestContext.Current.CancellationToken);
        var agent = new DstackAgentClient(agentOptions.SocketPath);
        var fixture = new GatewayFixture(directory, upstream, agentApp, device, agent) { UpstreamClient = client };
        var (app, httpClient, backend) = await fixture.StartGatewayAsync(configure, services);
        fixture.Gateway = app;
        fixture.Client = httpClient;
        fixture.Backend = backend;
        return fixture;
    }

    /// <summary>Starts another gateway instance on the same upstream and agent (for fleet tests).</summary>
    public async Task<(WebApplication App, HttpClient Client, IUpstreamBackend Backend)> StartGatewayAsync(
        Action<GatewayOptions>? configure = null, Action<IServiceCollection>? services = null)
    {
        var options = new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], Tokens = [Token] };
        configure?.Invoke(options);
        var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = Upstream.BaseAddress }, UpstreamClient);
        var app = GatewayHost.Build(options, backend, Agent, services, l => l.SetMinimumLevel(LogLevel.Warning));
        await app.StartAsync(TestContext.Current.CancellationToken);
        _gateways.Add(app);
        var client = new HttpClient { BaseAddress = GatewayHost.Addresses(app)[0], Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        return (app, client, backend);
    }

    public static byte[] ChatBody(string model, bool stream, string prompt = "hello") =>
        Encoding.UTF8.GetBytes($"{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}\"}}],\"stream\":{(stream ? "true" : "false")}}}");

    /// <summary>POSTs exact bytes and reads the exact response bytes.</summary>
    public static async Task<Exchange> PostAsync(HttpClient client, string path, byte[] body, Action<HttpRequestMessage>? edit = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        edit?.Invoke(request);
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        var bytes = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        var receiptId = response.Headers.TryGetValues("X-Receipt-Id", out var values) ? values.First() : null;
        return new Exchange((int)response.StatusCode, bytes, receiptId, response.Content.Headers.ContentType?.MediaType);
    }

    public Task<Exchange> PostAsync(string path, byte[] body, Action<HttpRequestMessage>? edit = null) => PostAsync(Client, path, body, edit);

    public static async Task<(int Status, JsonElement Body)> GetJsonAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path, TestContext.Current.CancellationToken);
        var bytes = await response.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken);
        using var doc = JsonDocument.Parse(bytes);
        return ((int)response.StatusCode, doc.RootElement.Clone());
    }

    public Task<(int Status, JsonElement Body)> GetJsonAsync(string path) => GetJsonAsync(Client, path);

    /// <summary>The id the gateway stores a response under: the response's own id.</summary>
    public static string ResponseId(Exchange exchange)
    {
        if (exchange.ContentType == "text/event-stream")
        {
            var first = Encoding.UTF8.GetString(exchange.Body).Split('\n').First(l => l.StartsWith("data: {", StringComparison.Ordinal));
            using var chunk = JsonDocument.Parse(first["data: ".Length..]);
            return chunk.RootElement.GetProperty("id").GetString()!;
        }

        using var doc = JsonDocument.Parse(exchange.Body);
        return doc.RootElement.GetProperty("id").GetString()!;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var gateway in _gateways)
        {
            await gateway.StopAsync(CancellationToken.None);
            await gateway.DisposeAsync();
        }

        Client?.Dispose();
        Agent.Dispose();
        await AgentApp.StopAsync(CancellationToken.None);
        await AgentApp.DisposeAsync();
        Device.Dispose();
        await Upstream.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal sealed record Exchange(int Status, byte[] Body, string? ReceiptId, string? ContentType)
{
    public string Text => Encoding.UTF8.GetString(Body);
}
