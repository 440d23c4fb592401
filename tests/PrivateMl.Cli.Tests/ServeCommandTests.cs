using System.CommandLine;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PrivateMl.Cli.Commands;
using PrivateMl.Gateway;
using PrivateMl.Inference.Upstream;

namespace PrivateMl.Cli.Tests;

public sealed class ServeCommandTests
{
    [Theory]
    [InlineData("ftp://example")]
    [InlineData("not a url")]
    public void Rejects_ANonHttpUpstream_WithExit2(string upstream)
    {
        var error = new StringWriter();

        var code = Program.BuildRoot().Parse(["serve", "--upstream", upstream, "--no-agent"]).Invoke(new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
        Assert.Contains("--upstream", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_AgentKeysWithoutAnAgent()
    {
        var error = new StringWriter();

        var code = Program.BuildRoot().Parse(["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", "--keys", "agent"])
            .Invoke(new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
    }

    [Fact]
    public async Task Serves_WithTokensFromAFile_AndRelaysUpstreamFailureAs502()
    {
        var tokens = Path.GetTempFileName();
        await File.WriteAllLinesAsync(tokens, ["# operators", "secret-token"], TestContext.Current.CancellationToken);
        var started = new TaskCompletionSource<WebApplication>(TaskCreationOptions.RunContinuationsAsynchronously);
        ServeCommand.Started = started.SetResult;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var output = new StringWriter();
        try
        {
            var run = Program.BuildRoot()
                .Parse(["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", "--listen", "http://127.0.0.1:0", "--tokens", tokens])
                .InvokeAsync(new InvocationConfiguration { Output = output, Error = new StringWriter() }, cts.Token);
            var app = await started.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
            using var client = new HttpClient { BaseAddress = GatewayHost.Addresses(app)[0] };

            using var health = await client.GetAsync("/health", TestContext.Current.CancellationToken);
            using var anonymous = await client.PostAsync("/v1/chat/completions", new StringContent("{}"), TestContext.Current.CancellationToken);
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "secret-token");
            using var relayed = await client.PostAsync("/v1/chat/completions", new StringContent("{\"model\":\"m\"}"), TestContext.Current.CancellationToken);
            using var report = await client.GetAsync("/v1/attestation/report", TestContext.Current.CancellationToken);

            Assert.Equal(200, (int)health.StatusCode);
            Assert.Equal(401, (int)anonymous.StatusCode);
            Assert.Equal(502, (int)relayed.StatusCode);
            Assert.Equal(503, (int)report.StatusCode);
            await cts.CancelAsync();
            Assert.Equal(ExitCodes.Accepted, await run);
            Assert.Contains("privateml gateway serving on", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            ServeCommand.Started = null;
            File.Delete(tokens);
        }
    }

    [Theory]
    [InlineData(null, LogLevel.Information, LogLevel.Debug)]
    [InlineData("warning", LogLevel.Warning, LogLevel.Information)]
    [InlineData("debug", LogLevel.Debug, LogLevel.Trace)]
    public async Task LogLevel_SetsTheLeastSevereEntryWritten(string? level, LogLevel written, LogLevel dropped)
    {
        string[] flags = level is null ? [] : ["--log-level", level];
        await WhileServingAsync(flags, app =>
        {
            var loggers = app.Services.GetRequiredService<ILoggerFactory>();
            Assert.True(loggers.CreateLogger("PrivateMl.Gateway").IsEnabled(written));
            Assert.False(loggers.CreateLogger("PrivateMl.Gateway").IsEnabled(dropped));
            Assert.False(loggers.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void Rejects_AnUnknownLogLevel()
    {
        var error = new StringWriter();

        var code = Program.Invoke(Program.BuildRoot().Parse(["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", "--log-level", "verbose"]), new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
        Assert.Contains("verbose", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("--inline-io", true)]
    [InlineData("--inline-io false", false)]
    public async Task InlineIo_IsOnByDefault_AndFalseTurnsItOff(string? flag, bool inline)
    {
        string[] flags = flag is null ? [] : flag.Split(' ');
        var parse = Program.BuildRoot().Parse(["serve", "--upstream", "http://127.0.0.1:9", .. flags]);
        Assert.Equal(inline, ServeCommand.WantsInlineIo(parse));
        await WhileServingAsync(flags, async app =>
        {
            Assert.Equal(inline, app.Services.GetRequiredService<GatewayOptions>().InlineSocketScheduling);
            Assert.Equal(inline, app.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);
            using var client = new HttpClient { BaseAddress = GatewayHost.Addresses(app)[0] };
            using var health = await client.GetAsync("/health", TestContext.Current.CancellationToken);
            Assert.Equal(200, (int)health.StatusCode);
        });
    }

    [Theory]
    [InlineData(new string[0], 0, 60)]
    [InlineData(new[] { "--drain-delay", "10", "--shutdown-timeout", "30" }, 10, 30)]
    public async Task DrainDelay_AndShutdownTimeout_ReachTheGateway_AndTheProcessWaitsForThem(string[] flags, int drain, int shutdown)
    {
        var started = new TaskCompletionSource<WebApplication>(TaskCreationOptions.RunContinuationsAsynchronously);
        ServeCommand.Started = started.SetResult;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        try
        {
            string[] args = ["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", "--listen", "http://127.0.0.1:0", .. flags];
            var parse = Program.BuildRoot().Parse(args);
            Assert.Equal(TimeSpan.FromSeconds(drain + shutdown + 5), ServeCommand.TerminationGrace(parse));
            var run = parse.InvokeAsync(new InvocationConfiguration { Output = new StringWriter(), Error = new StringWriter() }, cts.Token);
            var app = await started.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

            var options = app.Services.GetRequiredService<GatewayOptions>();
            Assert.Equal(TimeSpan.FromSeconds(drain), options.DrainDelay);
            Assert.Equal(TimeSpan.FromSeconds(shutdown), options.ShutdownTimeout);
            Assert.Equal(TimeSpan.FromSeconds(drain + shutdown), app.Services.GetRequiredService<IOptions<Microsoft.Extensions.Hosting.HostOptions>>().Value.ShutdownTimeout);

            // Cut the drain short: the command's token is the test's, not a signal.
            await cts.CancelAsync();
            Assert.Equal(ExitCodes.Accepted, await run);
        }
        finally
        {
            ServeCommand.Started = null;
        }
    }

    [Fact]
    public void Other_commands_keep_the_default_termination_grace()
    {
        Assert.Null(ServeCommand.TerminationGrace(Program.BuildRoot().Parse(["quote", "show", "x.bin"])));
        Assert.Null(ServeCommand.TerminationGrace(Program.BuildRoot().Parse(["serve", "--drain-delay", "x"])));
    }

    [Fact]
    public void A_negative_drain_delay_is_a_usage_error()
    {
        var error = new StringWriter();

        var code = Program.BuildRoot().Parse(["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", "--drain-delay", "-1"])
            .Invoke(new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
        Assert.Contains("DrainDelay", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("json", "json")]
    [InlineData("text", "simple")]
    public async Task LogFormat_PicksTheConsoleFormatter(string format, string formatter)
    {
        await WhileServingAsync(["--log-format", format], app =>
        {
            Assert.Equal(formatter, app.Services.GetRequiredService<IOptionsMonitor<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>>().CurrentValue.FormatterName);
            return Task.CompletedTask;
        });
    }

    [Fact]
    public void An_unknown_log_format_is_a_usage_error()
    {
        var code = Program.Invoke(Program.BuildRoot().Parse(["serve", "--upstream", "http://127.0.0.1:1", "--log-format", "xml"]), new InvocationConfiguration { Output = new StringWriter(), Error = new StringWriter() });

        Assert.Equal(ExitCodes.UsageOrInput, code);
    }

    [Theory]
    [InlineData("--simulated-gpus", "3")]
    [InlineData("--gpu", "nvml", "--simulated-gpus", "3")]
    [InlineData("--gpu", "simulated", "--simulated-gpus", "0")]
    [InlineData("--gpu", "simulated", "--simulated-gpus", "65")]
    public void Simulated_gpus_need_the_simulated_gpu_and_a_count_of_1_to_64(params string[] flags)
    {
        var error = new StringWriter();

        var code = Program.Invoke(
            Program.BuildRoot().Parse(["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", .. flags]),
            new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
        Assert.Contains("--simulated-gpus", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new string[0], 1)]
    [InlineData(new[] { "--simulated-gpus", "3" }, 3)]
    public async Task Simulated_gpus_all_attest_over_the_nonce(string[] count, int expected) =>
        await WhileServingAsync(["--gpu", "simulated", .. count], async app =>
        {
            var source = app.Services.GetRequiredService<PrivateMl.Tee.Gpu.IGpuEvidenceSource>();

            var evidence = await source.GetEvidenceAsync(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32), TestContext.Current.CancellationToken);

            Assert.Equal(expected, evidence.Items.Count);
        });

    [Theory]
    [InlineData(new string[0], typeof(Http11SocketBackend))]
    [InlineData(new[] { "--upstream-client", "sockets" }, typeof(Http11SocketBackend))]
    [InlineData(new[] { "--upstream-client", "httpclient" }, typeof(UpstreamHttpBackend))]
    public async Task An_http_upstream_is_reached_over_pooled_sockets_unless_httpclient_is_named(string[] flags, Type expected) =>
        await WhileServingAsync(flags, app =>
        {
            Assert.IsType(expected, app.Services.GetRequiredService<PrivateMl.Inference.IInferenceBackend>());
            return Task.CompletedTask;
        });

    [Fact]
    public void The_sockets_client_refuses_an_https_upstream_as_a_usage_error()
    {
        var error = new StringWriter();

        var code = Program.Invoke(
            Program.BuildRoot().Parse(["serve", "--upstream", "https://127.0.0.1:1", "--no-agent", "--upstream-client", "sockets"]),
            new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(ExitCodes.UsageOrInput, code);
        Assert.Contains("--upstream-client sockets", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Runs <c>serve</c> with <paramref name="flags"/> (no agent, an upstream nobody answers, a loopback port), hands the
    /// started gateway to <paramref name="check"/>, then stops it with the command's token and expects a clean exit.
    /// </summary>
    private static async Task WhileServingAsync(string[] flags, Func<WebApplication, Task> check)
    {
        var started = new TaskCompletionSource<WebApplication>(TaskCreationOptions.RunContinuationsAsynchronously);
        ServeCommand.Started = started.SetResult;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        try
        {
            string[] args = ["serve", "--upstream", "http://127.0.0.1:1", "--no-agent", "--listen", "http://127.0.0.1:0", .. flags];
            var run = Program.BuildRoot().Parse(args).InvokeAsync(new InvocationConfiguration { Output = new StringWriter(), Error = new StringWriter() }, cts.Token);
            var app = await started.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

            await check(app);

            await cts.CancelAsync();
            Assert.Equal(ExitCodes.Accepted, await run);
        }
        finally
        {
            ServeCommand.Started = null;
        }
    }
}
