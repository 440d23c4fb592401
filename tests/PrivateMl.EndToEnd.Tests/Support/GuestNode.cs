using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Client;
using PrivateMl.Gateway;
using PrivateMl.Inference.Upstream;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.EndToEnd.Tests.Support;

/// <summary>
/// One booted development guest, wired as <c>privateml guest boot</c> wires it (GuestCommands): the host's shared
/// folder read and planned (<see cref="DevGuestKeyPlan"/>), the image's SIMULATED platform installed, the agent
/// started with key provider kms (app keys over RA-TLS, the encrypted env opened), then the attesting gateway with
/// signing keys from the agent's GetKey and the bearer tokens from the env — in front of a real OpenAI-shaped
/// upstream on loopback instead of the embedded demo model.
/// </summary>
internal sealed class GuestNode : IAsyncDisposable
{
    private readonly DevGuestAgent _agent;
    private readonly DstackAgentClient _agentClient;
    private readonly IUpstreamBackend _backend;
    private readonly WebApplication _gateway;
    private bool _disposed;

    private GuestNode(string sharedDirectory, string guestDirectory, GuestSharedFiles files, string agentSocket, DevGuestAgent agent, DstackAgentClient agentClient, IUpstreamBackend backend, WebApplication gateway)
    {
        SharedDirectory = sharedDirectory;
        GuestDirectory = guestDirectory;
        Files = files;
        AgentSocket = agentSocket;
        _agent = agent;
        _agentClient = agentClient;
        _backend = backend;
        _gateway = gateway;
        BaseAddress = GatewayHost.Addresses(gateway)[0];
    }

    public Uri BaseAddress { get; }

    /// <summary>The host's shared folder this guest boots from.</summary>
    public string SharedDirectory { get; }

    /// <summary>The guest's own disk: the copy of the shared files, the agent state (instance id seed, simulator), the socket.</summary>
    public string GuestDirectory { get; }

    /// <summary>What the guest read from the host's shared folder (compose, app id, KMS URLs, env).</summary>
    public GuestSharedFiles Files { get; }

    public DevGuestAgent Agent => _agent;

    /// <summary>The agent's DstackGuest socket (what the app's containers would mount as /var/run/dstack.sock).</summary>
    public string AgentSocket { get; }

    /// <summary>
    /// Boots the guest from <paramref name="sharedDirectory"/> in <paramref name="guestDirectory"/>.
    /// </summary>
    /// <exception cref="GuestBootException">The guest refused to boot (the shared files, the KMS, or the env); nothing is left running.</exception>
    public static async Task<GuestNode> BootAsync(string sharedDirectory, string guestDirectory, string imageSimulator, Uri upstream, CancellationToken ct)
    {
        var files = GuestSharedFolder.CopyAndRead(sharedDirectory, Path.Combine(guestDirectory, ".host-shared"));
        var plan = DevGuestKeyPlan.For(files);
        var agentState = Path.Combine(guestDirectory, "agent");
        var socket = Path.Combine(guestDirectory, "dstack.sock");
        var agentOptions = await DevGuestAgent.PrepareAsync(files, plan, socket, agentState, ct);
        if (DevGuestAgent.InstallSimulator(imageSimulator, agentState) is null)
        {
            throw new InvalidOperationException($"no simulated platform at {imageSimulator}");
        }

        var agent = await DevGuestAgent.StartAsync(agentOptions, Quiet, ct);
        var agentClient = new DstackAgentClient(socket);
        var backend = UpstreamBackends.Create(new UpstreamHttpBackendOptions { BaseAddress = upstream });
        WebApplication? gateway = null;
        try
        {
            gateway = GatewayHost.Build(
                new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"], KeySource = SigningKeySource.Agent, Tokens = agent.ApiTokens() },
                backend,
                agentClient,
                configureLogging: Quiet);
            await gateway.StartAsync(ct);
            return new GuestNode(sharedDirectory, guestDirectory, files, socket, agent, agentClient, backend, gateway);
        }
        catch
        {
            if (gateway is not null)
            {
                await gateway.DisposeAsync();
            }

            backend.Dispose();
            agentClient.Dispose();
            await agent.DisposeAsync();
            throw;
        }
    }

    private static void Quiet(ILoggingBuilder logging) => logging.SetMinimumLevel(LogLevel.None);

    /// <summary>Stops the gateway, then the agent (a guest shutting down).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _gateway.StopAsync(CancellationToken.None);
        await _gateway.DisposeAsync();
        _backend.Dispose();
        _agentClient.Dispose();
        await _agent.DisposeAsync();
    }
}
