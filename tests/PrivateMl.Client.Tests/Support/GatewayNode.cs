using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Hosting;
using PrivateMl.Gateway;
using PrivateMl.Inference.Upstream;
using PrivateMl.Tee.Gpu;
using PrivateMl.Tee.Simulator;
using PrivateMl.Tee.Simulator.Gpu;
using PrivateMl.Testing;

namespace PrivateMl.Client.Tests.Support;

/// <summary>
/// Our whole node in simulation, as <c>privateml up</c> runs it: a small OpenAI-shaped upstream on loopback, the
/// simulated dstack guest agent on a Unix socket, and the attesting gateway in front.
/// </summary>
internal sealed class GatewayNode : IAsyncDisposable
{
    public const string Token = "client-test-token";

    private readonly string _directory;
    private readonly WebApplication _upstream;
    private readonly WebApplication _agentApp;
    private readonly SimulatedTdxDevice _device;
    private readonly DstackAgentClient _agent;
    private readonly WebApplication _gateway;
    private readonly IUpstreamBackend _backend;
    private readonly SimulatedGpuEvidenceSource? _gpus;

    private GatewayNode(string directory, WebApplication upstream, WebApplication agentApp, SimulatedTdxDevice device, DstackAgentClient agent, WebApplication gateway, IUpstreamBackend backend, System.Collections.Concurrent.ConcurrentQueue<byte[]> received, SimulatedGpuEvidenceSource? gpus)
    {
        _gpus = gpus;
        UpstreamReceived = received;
        _directory = directory;
        _upstream = upstream;
        _agentApp = agentApp;
        _device = device;
        _agent = agent;
        _gateway = gateway;
        _backend = backend;
        BaseAddress = GatewayHost.Addresses(gateway)[0];
    }

    public Uri BaseAddress { get; }

    public SimulatedTdxDevice Device => _device;

    /// <summary>The request bodies the model received (after the gateway removed any E2EE).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<byte[]> UpstreamReceived { get; }

    public WebApplication Gateway => _gateway;

    /// <summary>
    /// Starts the node; <paramref name="streamDelay"/> pauses the upstream between stream events (so each travels alone);
    /// with <paramref name="simulatedGpus"/> its reports carry SIMULATED evidence from that many GPUs.
    /// </summary>
    public static async Task<GatewayNode> StartAsync(TimeSpan? streamDelay = null, int simulatedGpus = 0)
    {
        var ct = TestContext.Current.CancellationToken;
        var directory = Directory.CreateTempSubdirectory("pml-client-gw-").FullName;
        var received = new System.Collections.Concurrent.ConcurrentQueue<byte[]>();
        var upstream = await LoopbackServer.StartAsync(app => app.MapPost("/v1/chat/completions", context => CompleteAsync(context, received, streamDelay ?? TimeSpan.Zero)), ct);

        var agentOptions = new AgentOptions
        {
            SocketPath = Path.Combine(directory, "dstack.sock"),
            TappdSocketPath = null,
            StateDirectory = Path.Combine(directory, "agent-state"),
        };
        var agentApp = GuestAgentHost.BuildSimulated(agentOptions, out var device, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        await agentApp.StartAsync(ct);
        var agent = new DstackAgentClient(agentOptions.SocketPath);
        var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = upstream.BaseAddress() });
        var gpus = simulatedGpus > 0 ? new SimulatedGpuEvidenceSource(simulatedGpus) : null;
        var gateway = GatewayHost.Build(
            new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], Tokens = [Token] },
            backend,
            agent,
            gpus is null ? null : services => services.AddSingleton<IGpuEvidenceSource>(gpus),
            l => l.SetMinimumLevel(LogLevel.Warning));
        await gateway.StartAsync(ct);
        return new GatewayNode(directory, upstream, agentApp, device, agent, gateway, backend, received, gpus);
    }

    public NodeVerifierOptions AciOptions() => Options() with { ReportFormat = NodeReportFormat.Aci };

    public NodeVerifierOptions Options(bool allowSimulated = true) => new()
    {
        AllowSimulated = allowSimulated,
        Collateral = new FixedCollateral(_device.CreateCollateral()),
        ApiKey = Token,
    };

    private static async Task CompleteAsync(HttpContext context, System.Collections.Concurrent.ConcurrentQueue<byte[]> received, TimeSpan streamDelay)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        received.Enqueue(buffer.ToArray());
        using var doc = JsonDocument.Parse(buffer.ToArray());
        var model = doc.RootElement.GetProperty("model").GetString()!;
        var stream = doc.RootElement.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N")[..12];
        if (model == "fault-echo")
        {
            // A model error that quotes the prompt, as validation errors of model servers do.
            var content = doc.RootElement.GetProperty("messages")[0].GetProperty("content").GetString();
            context.Response.StatusCode = 400;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message = "cannot take this prompt: " + content, type = "BadRequestError", code = 400 } }));
            return;
        }

        if (!stream)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync($"{{\"id\":\"{id}\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"hello there\"}},\"finish_reason\":\"stop\"}}]}}");
            return;
        }

        context.Response.ContentType = "text/event-stream; charset=utf-8";
        for (var i = 0; i < 4; i++)
        {
            await context.Response.WriteAsync($"data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n");
            await context.Response.Body.FlushAsync();
            if (streamDelay > TimeSpan.Zero)
            {
                await Task.Delay(streamDelay, context.RequestAborted);
            }
        }

        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.StopAsync(CancellationToken.None);
        await _gateway.DisposeAsync();
        _backend.Dispose();
        _agent.Dispose();
        await _agentApp.StopAsync(CancellationToken.None);
        await _agentApp.DisposeAsync();
        _device.Dispose();
        _gpus?.Dispose();
        await _upstream.StopAsync(CancellationToken.None);
        await _upstream.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Flips one byte of every chat completion response body (a man in the middle).</summary>
internal sealed class TamperingHandler() : DelegatingHandler(new HttpClientHandler())
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        if (request.RequestUri!.AbsolutePath.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            var text = Encoding.UTF8.GetString(bytes).Replace("tok1", "TOK1", StringComparison.Ordinal);
            var type = response.Content.Headers.ContentType;
            response.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(text));
            response.Content.Headers.ContentType = type ?? new MediaTypeHeaderValue("application/json");
        }

        return response;
    }
}
