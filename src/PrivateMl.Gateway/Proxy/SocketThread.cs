using System.Runtime.CompilerServices;

namespace PrivateMl.Gateway.Proxy;

/// <summary>
/// Under inline I/O (<see cref="GatewayOptions.InlineSocketScheduling"/> with the runtime's inline socket completions)
/// the relay runs on a socket thread, where every other connection of that thread waits while it works. The first byte
/// is worth that (no hand-off before it leaves); later chunks and the signing are not. <c>await SocketThread.Leave()</c>
/// continues on the thread pool when called on any other thread, and costs nothing on a pool thread (the default
/// scheduling, where the relay always is).
/// </summary>
internal static class SocketThread
{
    public static Exit Leave() => default;

    internal readonly struct Exit : ICriticalNotifyCompletion
    {
        public bool IsCompleted => Thread.CurrentThread.IsThreadPoolThread;

        public Exit GetAwaiter() => this;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) => ThreadPool.QueueUserWorkItem(static c => c(), continuation, preferLocal: false);

        public void UnsafeOnCompleted(Action continuation) => ThreadPool.UnsafeQueueUserWorkItem(static c => c(), continuation, preferLocal: false);
    }
}
