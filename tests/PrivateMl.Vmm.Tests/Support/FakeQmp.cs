using System.Net.Sockets;
using System.Text;

namespace PrivateMl.Vmm.Tests.Support;

/// <summary>
/// A QMP server on a Unix socket, standing in for the one qemu opens at <c>&lt;wd&gt;/qmp.sock</c> (the fake qemu is a
/// shell script and opens none): greets as QEMU does, answers every command with <c>{"return": {}}</c> (after an
/// asynchronous event line, to show events are skipped) or with an error, and records the commands in order.
/// </summary>
internal sealed class FakeQmp : IAsyncDisposable
{
    private readonly Socket listener;
    private readonly CancellationTokenSource stop = new();
    private readonly Task serving;
    private readonly List<string> commands = [];

    private readonly Action<string>? onCommand;

    /// <param name="onCommand">Runs before a command is answered (e.g. ends the fake qemu on system_powerdown, as a guest that powers off).</param>
    public FakeQmp(string path, string? failCommand = null, bool silent = false, Action<string>? onCommand = null)
    {
        Path = path;
        this.onCommand = onCommand;
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(4);
        serving = ServeAsync(failCommand, silent);
    }

    public string Path { get; }

    public IReadOnlyList<string> Commands
    {
        get
        {
            lock (commands)
            {
                return commands.ToList();
            }
        }
    }

    private async Task ServeAsync(string? failCommand, bool silent)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                using var client = await listener.AcceptAsync(stop.Token);
                try
                {
                    await ServeOneAsync(client, failCommand, silent);
                }
                catch (Exception e) when (e is SocketException or IOException)
                {
                    // The client went away mid-exchange; wait for the next one.
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task ServeOneAsync(Socket client, string? failCommand, bool silent)
    {
        await using var stream = new NetworkStream(client);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        if (silent)
        {
            await reader.ReadLineAsync(stop.Token);
            return;
        }

        await Write(stream, """{"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg"}, "capabilities": []}}""");
        while (await reader.ReadLineAsync(stop.Token) is { } line)
        {
            var command = System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("execute").GetString()!;
            lock (commands)
            {
                commands.Add(command);
            }

            onCommand?.Invoke(command);
            await Write(stream, """{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "NIC_RX_FILTER_CHANGED", "data": {"path": "/machine/peripheral-anon/device[0]/virtio-backend"}}""");
            await Write(stream, command == failCommand
                ? """{"error": {"class": "GenericError", "desc": "injected refusal"}}"""
                : """{"return": {}}""");
        }
    }

    private async Task Write(NetworkStream stream, string line) =>
        await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), stop.Token);

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Dispose();
        await serving;
        stop.Dispose();
        if (Directory.Exists(System.IO.Path.GetDirectoryName(Path)))
        {
            File.Delete(Path);
        }
    }
}
