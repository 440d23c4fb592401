using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Agent.Client;
using PrivateMl.Gateway.Attestation;
using PrivateMl.Gateway.Operations;
using PrivateMl.Inference.Upstream;

namespace PrivateMl.Gateway.Tests.Attestation;

public sealed class ReportThreadTests
{
    [Theory]
    [InlineData("seed")]
    [InlineData("aci")]
    public async Task A_report_is_written_off_the_thread_the_agent_answered_on(string format)
    {
        var agent = new HeldAgent();
        using var backend = new UpstreamHttpBackend(new UpstreamHttpBackendOptions { BaseAddress = new Uri("http://127.0.0.1:9/") });
        await using var app = GatewayHost.Build(new GatewayOptions { ListenUrls = ["http://127.0.0.1:0"] }, backend, agent);
        await app.StartAsync(TestContext.Current.CancellationToken);
        var builder = app.Services.GetRequiredService<AttestationReportBuilder>();

        // The report's build time is recorded on the thread that wrote the report, after the writing.
        var recordedOnPool = new List<bool>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == GatewayMetrics.MeterName && instrument.Name == "privateml.gateway.attestation")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) =>
        {
            lock (recordedOnPool)
            {
                recordedOnPool.Add(Thread.CurrentThread.IsThreadPoolThread);
            }
        });
        listener.Start();

        var building = format == "aci"
            ? builder.BuildAciAsync(null, TestContext.Current.CancellationToken)
            : builder.BuildAsync(null, "ecdsa", null, TestContext.Current.CancellationToken);
        await agent.Asked.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        // The quote completes the builder's wait on this thread, as a socket thread's completion would.
        var socketLike = new Thread(() => agent.Quote.SetResult(new DstackQuote(new byte[1024], "[]", new byte[64], null)));
        socketLike.Start();
        socketLike.Join();
        var (error, json) = await building;

        Assert.Equal(ReportError.None, error);
        Assert.NotNull(json);
        // Other tests' reports may be recorded too (the listener hears the whole process); all of them run on the pool.
        Assert.NotEmpty(recordedOnPool);
        Assert.All(recordedOnPool, Assert.True);
    }

    /// <summary>An agent whose quote the test gives, on the thread it chooses.</summary>
    private sealed class HeldAgent : IDstackAgentClient
    {
        public TaskCompletionSource Asked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<DstackQuote> Quote { get; } = new();

        public Task<DstackQuote> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken)
        {
            Asked.TrySetResult();
            return Quote.Task;
        }

        public Task<DstackKey> GetKeyAsync(string path, string purpose, string algorithm, CancellationToken cancellationToken) =>
            Task.FromResult(new DstackKey(RandomNumberGenerator.GetBytes(32), []));

        public Task<string> InfoAsync(CancellationToken cancellationToken) => Task.FromResult("{}");

        public Task EmitEventAsync(string eventName, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
