using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Proxy;

public sealed class RetentionAndLoggingTests
{
    [Fact]
    public async Task FirstSignature_IsStillServed_AfterABurstLargerThanTheSeedProxyKeeps()
    {
        await using var node = await GatewayFixture.StartAsync();
        var first = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));
        var firstId = GatewayFixture.ResponseId(first);

        // The seed proxy's local cache holds 1,000 entries (~1,200 requests lose the first); send 1,500 more.
        var ct = TestContext.Current.CancellationToken;
        await Parallel.ForEachAsync(Enumerable.Range(0, 1500), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (_, _) =>
        {
            var exchange = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", false));
            Assert.Equal(200, exchange.Status);
        });

        var (status, signature) = await node.GetJsonAsync($"/v1/signature/{firstId}");
        Assert.Equal(200, status);
        Assert.EndsWith(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(first.Body)), signature.GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logs_NeverCarryPromptOrCompletionText_NorTheToken()
    {
        var sink = new CapturingLoggerProvider();
        await using var node = await GatewayFixture.StartAsync(services: s =>
        {
            s.AddSingleton<ILoggerProvider>(sink);
            s.Configure<LoggerFilterOptions>(o => o.MinLevel = LogLevel.Trace);
        });
        const string secretPrompt = "my-secret-prompt-7f3a";

        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", true, secretPrompt));
        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("fault-500", false, secretPrompt));
        await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("reset", true, secretPrompt)).ContinueWith(_ => { }, TaskScheduler.Default);
        using var anonymous = new HttpClient { BaseAddress = node.Client.BaseAddress };
        await GatewayFixture.PostAsync(anonymous, "/v1/chat/completions", GatewayFixture.ChatBody("test-model", false, secretPrompt));

        Assert.Contains(sink.Messages, m => m.Contains("Rejected /v1/chat/completions: 401", StringComparison.Ordinal));
        Assert.Contains(sink.Messages, m => m.Contains("signed", StringComparison.Ordinal));
        Assert.DoesNotContain(sink.Messages, m => m.Contains(secretPrompt, StringComparison.Ordinal));
        Assert.DoesNotContain(sink.Messages, m => m.Contains("tok0", StringComparison.Ordinal) || m.Contains("hello there", StringComparison.Ordinal));
        Assert.DoesNotContain(sink.Messages, m => m.Contains(GatewayFixture.Token, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(int.MaxValue, true)] // ~6 TB when full: more than any machine here
    [InlineData(1_000, false)] // ~3 MB
    public async Task AMemoryStoreThatCouldOutgrowTheProcess_IsWarnedAboutAtStart(int maxSignatures, bool warned)
    {
        var sink = new CapturingLoggerProvider();
        await using var node = await GatewayFixture.StartAsync(o => o.MaxStoredSignatures = maxSignatures, s =>
        {
            s.AddSingleton<ILoggerProvider>(sink);
            s.Configure<LoggerFilterOptions>(o => o.MinLevel = LogLevel.Information);
        });

        Assert.Contains(sink.Messages, m => m.Contains($"at most {maxSignatures} signatures, about", StringComparison.Ordinal));
        Assert.Equal(warned, sink.Messages.Any(m => m.Contains("The memory signature store may grow", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task InlineIo_IsStatedAtStart_WithWhetherUpstreamCompletionsAreInlineToo(bool inline)
    {
        var sink = new CapturingLoggerProvider();
        await using var node = await GatewayFixture.StartAsync(o => o.InlineSocketScheduling = inline, s =>
        {
            s.AddSingleton<ILoggerProvider>(sink);
            s.Configure<LoggerFilterOptions>(o => o.MinLevel = LogLevel.Information);
        });

        var upstreamInline = Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") == "1";
        Assert.Equal(inline, sink.Messages.Any(m => m.StartsWith("Inline I/O: requests and first bytes run on the socket threads, later chunks and signing on the thread pool; upstream socket completions inline: " + upstreamInline, StringComparison.Ordinal)));
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(Messages);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> messages) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                messages.Enqueue(formatter(state, exception) + " " + exception);
        }
    }
}
