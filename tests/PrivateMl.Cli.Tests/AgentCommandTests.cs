using System.CommandLine;
using System.Net.Sockets;
using PrivateMl.Cli.Commands;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Cli.Tests;

/// <summary><c>privateml agent</c>: refuses clearly without TDX, serves with --simulate.</summary>
[Collection(nameof(AgentCommandTests))]
public sealed class AgentCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pml-cli-agent-").FullName;

    public void Dispose()
    {
        AgentCommand.DevicePaths = TdxDevicePaths.Default;
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task WithoutSimulate_OnAMachineWithoutTdx_ExitsWithTheDetectorMessage()
    {
        var absent = Path.Combine(_directory, "no-such");
        AgentCommand.DevicePaths = new TdxDevicePaths
        {
            ConfigfsTsmReportRoot = Path.Combine(absent, "tsm", "report"),
            TdxGuestDevice = Path.Combine(absent, "tdx_guest"),
            RtmrMeasurementsDirectory = Path.Combine(absent, "measurements"),
            TdxAttestConfig = Path.Combine(absent, "tdx-attest.conf"),
        };

        var (code, _, error) = await RunAsync(CancellationToken.None, "agent", "--socket", Socket("dstack.sock"), "--tappd-socket", "", "--state", State());

        Assert.Equal(2, code);
        Assert.Contains(AgentCommand.DevicePaths.ConfigfsTsmReportRoot, error, StringComparison.Ordinal);
        Assert.Contains(AgentCommand.DevicePaths.TdxGuestDevice, error, StringComparison.Ordinal);
        Assert.Contains("--simulate", error, StringComparison.Ordinal);
        Assert.False(File.Exists(Socket("dstack.sock")));
    }

    [Fact]
    public async Task WithoutSimulate_OnThisMachine_NamesWhatIsMissing()
    {
        if (Directory.Exists(TdxDevicePaths.Default.ConfigfsTsmReportRoot) || File.Exists(TdxDevicePaths.Default.TdxGuestDevice))
        {
            Assert.Skip("this machine offers a TDX interface");
        }

        var (code, _, error) = await RunAsync(CancellationToken.None, "agent", "--socket", Socket("dstack.sock"), "--tappd-socket", "", "--state", State());

        Assert.Equal(2, code);
        Assert.Contains(TdxDeviceDetector.MissingMessage(TdxDevicePaths.Default), error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithSimulate_Serves_UntilCancelled_AndRemovesItsSockets()
    {
        using var stop = new CancellationTokenSource();
        var dstack = Socket("dstack.sock");
        var tappd = Socket("tappd.sock");
        var run = RunAsync(stop.Token, "agent", "--simulate", "--socket", dstack, "--tappd-socket", tappd, "--state", State());

        var version = await WaitForVersionAsync(dstack, run);
        Assert.Contains("\"version\"", version, StringComparison.Ordinal);

        await stop.CancelAsync();
        var (code, output, error) = await run;
        Assert.Equal(0, code);
        Assert.Contains("SIMULATED", output, StringComparison.Ordinal);
        Assert.Contains("SIMULATED", error, StringComparison.Ordinal);
        Assert.False(File.Exists(dstack));
        Assert.False(File.Exists(tappd));
    }

    [Theory]
    [InlineData("--listen", "not a url")]
    [InlineData("--listen", "https://127.0.0.1:1")]
    [InlineData("--app-compose", "/no/such/app-compose.json")]
    public async Task Rejects_BadOptions(string option, string value)
    {
        var (code, _, error) = await RunAsync(CancellationToken.None, "agent", "--simulate", "--socket", Socket("dstack.sock"), "--tappd-socket", "", "--state", State(), option, value);
        Assert.Equal(2, code);
        Assert.StartsWith("error:", error.Trim(), StringComparison.Ordinal);
    }

    private string Socket(string name) => Path.Combine(_directory, name);

    private string State() => Path.Combine(_directory, "state");

    private static async Task<(int Code, string Output, string Error)> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await Program.BuildRoot().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
        return (code, output.ToString(), error.ToString());
    }

    private static async Task<string> WaitForVersionAsync(string socketPath, Task running)
    {
        for (var attempt = 0; attempt < 600; attempt++)
        {
            Assert.False(running.IsCompleted, "the agent stopped before serving");
            if (File.Exists(socketPath))
            {
                try
                {
                    using var client = new HttpClient(new SocketsHttpHandler
                    {
                        ConnectCallback = async (_, ct) =>
                        {
                            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                            return new NetworkStream(socket, ownsSocket: true);
                        },
                    })
                    { BaseAddress = new Uri("http://localhost") };
                    using var response = await client.PostAsync("/Version", new StringContent("{}"), TestContext.Current.CancellationToken);
                    return await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
                }
                catch (HttpRequestException)
                {
                }
            }

            await Task.Delay(100, TestContext.Current.CancellationToken);
        }

        Assert.Fail("the agent never answered on its socket");
        return "";
    }
}
