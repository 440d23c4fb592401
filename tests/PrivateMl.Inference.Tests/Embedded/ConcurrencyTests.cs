using System.Text;
using static PrivateMl.Inference.Tests.Embedded.EngineHarness;

namespace PrivateMl.Inference.Tests.Embedded;

public sealed class ConcurrencyTests(DemoModelFile model)
{
    [Fact]
    public async Task BeyondConcurrencyPlusQueue_Answers429_ThenServesTheQueue()
    {
        await using var engine = Load(model, concurrency: 1, queue: 1);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        engine.OnSlotAcquired = async ct =>
        {
            entered.TrySetResult();
            await gate.Task.WaitAsync(ct);
        };

        var running = Chat(engine, ChatBody(maxTokens: 2));
        await entered.Task.WaitAsync(TestContext.Current.CancellationToken);
        var queued = Chat(engine, ChatBody(maxTokens: 2));
        Assert.False(queued.IsCompleted);

        var (status, json) = await Chat(engine, ChatBody(maxTokens: 2));
        Assert.Equal(429, status);
        Assert.Equal("rate_limit_exceeded", json.GetProperty("error").GetProperty("code").GetString());

        gate.SetResult();
        Assert.Equal(200, (await running).Status);
        Assert.Equal(200, (await queued).Status);
        Assert.Equal(200, (await Chat(engine, ChatBody(maxTokens: 2))).Status);

        var (_, _, metrics) = await SendRaw(engine, HttpMethod.Get, "/metrics");
        Assert.Contains("privateml_embedded_rejected_total 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("privateml_embedded_admitted 0\n", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ParallelRequests_WithinTheLimit_AllSucceed_AndMatchSerialOutput()
    {
        await using var engine = Load(model, concurrency: 3, queue: 8);
        var serial = (await Chat(engine, ChatBody(maxTokens: 12))).Json.GetRawText();
        var parallel = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Chat(engine, ChatBody(maxTokens: 12))));
        Assert.All(parallel, r => Assert.Equal(200, r.Status));
        Assert.All(parallel, r => Assert.Equal(
            serial[serial.IndexOf("\"choices\"", StringComparison.Ordinal)..],
            r.Json.GetRawText()[r.Json.GetRawText().IndexOf("\"choices\"", StringComparison.Ordinal)..]));
        Assert.NotNull(Encoding.UTF8);
    }
}
