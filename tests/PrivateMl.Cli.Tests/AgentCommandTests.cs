using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using PrivateMl.Cli.Commands;
using PrivateMl.Kms.Keys;
using PrivateMl.Tee.Tdx;
using PrivateMl.Testing;

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

    [Fact]
    public async Task WithSeveralKms_PassesAClosedPort_AndTakesTheKeysFromTheNextKms()
    {
        using var stop = new CancellationTokenSource();
        var agentState = State();
        var kmsState = Path.Combine(_directory, "kms");
        var kms = Start(stop.Token, "kms", "serve", "--simulate", "--simulator", Path.Combine(agentState, "tdx-simulator"), "--state", kmsState, "--listen", "https://127.0.0.1:0");
        var kmsUrl = await WaitForKmsUrlAsync(kms.Output, kms.Exit);
        using var closed = new RefusingPort();
        var dstack = Socket("dstack.sock");
        var agent = RunAsync(stop.Token, "agent", "--simulate", "--socket", dstack, "--tappd-socket", "", "--state", agentState, "--kms", closed.HttpsUrl.ToString(), "--kms", kmsUrl.ToString());

        using var info = JsonDocument.Parse(await WaitForAnswerAsync(dstack, "/Info", agent));

        using (var roots = KmsRootKeys.Open(kmsState))
        {
            Assert.Equal(roots.KeyProviderInfo, info.RootElement.GetProperty("key_provider_info").GetString());
        }

        await stop.CancelAsync();
        var (code, output, _) = await agent;
        Assert.Equal(0, code);
        Assert.Contains($"KMS {closed.HttpsUrl} gave no app keys: the KMS at {closed.HttpsUrl}prpc/GetTempCaCert could not be reached", output, StringComparison.Ordinal);
        Assert.Contains($"app keys from the KMS at {kmsUrl}", output, StringComparison.Ordinal);
        Assert.True(output.IndexOf("gave no app keys", StringComparison.Ordinal) < output.IndexOf("app keys from the KMS", StringComparison.Ordinal));
        Assert.Equal(0, await kms.Exit);
    }

    [Fact]
    public async Task WithEveryKmsClosed_FailsToStart_NamingEachUrlInOrder()
    {
        using var first = new RefusingPort();
        using var second = new RefusingPort();

        var (code, output, error) = await RunAsync(CancellationToken.None, "agent", "--simulate", "--socket", Socket("dstack.sock"), "--tappd-socket", "", "--state", State(),
            "--kms", first.HttpsUrl.ToString(), second.HttpsUrl.ToString());

        Assert.Equal(2, code);
        Assert.Contains("error: the agent could not start: no KMS gave app keys (2 tried, in order): ", error, StringComparison.Ordinal);
        var firstAt = error.IndexOf($"{first.HttpsUrl}: the KMS at {first.HttpsUrl}prpc/GetTempCaCert could not be reached", StringComparison.Ordinal);
        var secondAt = error.IndexOf($"{second.HttpsUrl}: the KMS at {second.HttpsUrl}prpc/GetTempCaCert could not be reached", StringComparison.Ordinal);
        Assert.True(firstAt >= 0 && secondAt > firstAt, error);
        Assert.DoesNotContain("serving", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithOneKms_ItsOwnErrorIsReported_AsBeforeSeveralWereAccepted()
    {
        using var closed = new RefusingPort();

        var (code, _, error) = await RunAsync(CancellationToken.None, "agent", "--simulate", "--socket", Socket("dstack.sock"), "--tappd-socket", "", "--state", State(), "--kms", closed.HttpsUrl.ToString());

        Assert.Equal(2, code);
        Assert.Contains($"error: the agent could not start: the KMS at {closed.HttpsUrl}prpc/GetTempCaCert could not be reached", error, StringComparison.Ordinal);
        Assert.DoesNotContain("no KMS gave app keys", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--kms", "https://a.example:8000", "--kms", "https://b.example:8000")]
    [InlineData("--kms", "https://a.example:8000", "https://b.example:8000")]
    public void Kms_TakesSeveralUrls_InTheOrderGiven(params string[] kmsArgs)
    {
        var parse = Program.BuildRoot().Parse(["agent", "--simulate", .. kmsArgs]);

        Assert.Empty(parse.Errors);
        Assert.Equal([new Uri("https://a.example:8000"), new Uri("https://b.example:8000")], parse.GetValue<Uri[]>("--kms") ?? []);
    }

    [Fact]
    public void Kms_RefusesWhatIsNotAUrl()
    {
        var parse = Program.BuildRoot().Parse(["agent", "--simulate", "--kms", "https://a.example:8000", "--kms", "not a url"]);

        Assert.Equal("--kms must be an absolute http(s) URL, got 'not a url'", Assert.Single(parse.Errors).Message);
    }

    [Theory]
    [InlineData("--kms", "http://127.0.0.1:1")]
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
        var (exit, output, error) = Start(cancellationToken, args);
        return (await exit, output.ToString(), error.ToString());
    }

    /// <summary>A command in flight: its exit code to come, and its output so far.</summary>
    private static (Task<int> Exit, StringWriter Output, StringWriter Error) Start(CancellationToken cancellationToken, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.BuildRoot().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken), output, error);
    }

    /// <summary>The URL a <c>kms serve</c> prints once it listens.</summary>
    private static async Task<Uri> WaitForKmsUrlAsync(StringWriter output, Task running)
    {
        for (var attempt = 0; attempt < 600; attempt++)
        {
            Assert.False(running.IsCompleted, "the KMS stopped before serving");
            var line = output.ToString().Split('\n').FirstOrDefault(l => l.StartsWith("privateml kms serving", StringComparison.Ordinal));
            if (line is not null)
            {
                return new Uri(line.Split(" on ")[1].Split(',')[0].Trim());
            }

            await Task.Delay(100, TestContext.Current.CancellationToken);
        }

        Assert.Fail("the KMS never said where it serves");
        return null;
    }

    private static Task<string> WaitForVersionAsync(string socketPath, Task running) => WaitForAnswerAsync(socketPath, "/Version", running);

    private static async Task<string> WaitForAnswerAsync(string socketPath, string path, Task running)
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
                    using var response = await client.PostAsync(path, new StringContent("{}"), TestContext.Current.CancellationToken);
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
