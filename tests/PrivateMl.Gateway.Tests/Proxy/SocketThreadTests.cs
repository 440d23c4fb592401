using PrivateMl.Gateway.Proxy;

namespace PrivateMl.Gateway.Tests.Proxy;

public sealed class SocketThreadTests
{
    [Fact]
    public async Task Leave_moves_work_from_a_thread_outside_the_pool_onto_the_pool()
    {
        Task<(bool Before, bool After)>? probe = null;
        var socketLike = new Thread(() => probe = ProbeAsync());
        socketLike.Start();
        socketLike.Join();

        var (before, after) = await probe!;

        Assert.False(before);
        Assert.True(after);
    }

    [Fact]
    public async Task Leave_on_a_pool_thread_continues_in_place()
    {
        var sameThread = await Task.Run(async () =>
        {
            var id = Environment.CurrentManagedThreadId;
            await SocketThread.Leave();
            return id == Environment.CurrentManagedThreadId;
        }, TestContext.Current.CancellationToken);

        Assert.True(sameThread);
    }

    private static async Task<(bool Before, bool After)> ProbeAsync()
    {
        var before = Thread.CurrentThread.IsThreadPoolThread;
        await SocketThread.Leave();
        return (before, Thread.CurrentThread.IsThreadPoolThread);
    }
}
