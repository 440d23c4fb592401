using System.Diagnostics;
using System.Runtime.InteropServices;

/// <summary>
/// Completes waits at their due <see cref="Stopwatch"/> timestamp to within tens of microseconds, for the synthetic
/// model's first token. <see cref="Task.Delay(int)"/> runs on the runtime's millisecond timer queue, whose ticks come
/// from a coarse clock: a 10 ms delay ends 10–13 ms later depending on where in the tick the request arrived, and
/// that phase differs between the direct and the proxied path — the "added time to first byte" then moves by a
/// millisecond for reasons that are not the proxy's (it came out negative in earlier runs). Here one thread sleeps
/// with <c>clock_nanosleep</c> on <c>CLOCK_MONOTONIC</c> (what <see cref="Stopwatch"/> reads on Linux) with a 1 ns
/// timer slack, so every path's first token leaves at its request's arrival plus the interval. Later tokens keep
/// <see cref="Task.Delay(int)"/>: they do not enter the first byte, and one wake-up per token per stream would cost
/// the 2-core machine more than the millisecond grid does.
/// </summary>
internal sealed partial class PreciseTimer : IDisposable
{
    private const int ClockMonotonic = 1;
    private const int TimerAbsolute = 1;
    private const int PrSetTimerSlack = 29;
    private const int Eintr = 4;
    private static readonly long CoarseWaitThreshold = Stopwatch.Frequency / 500; // 2 ms

    private readonly PriorityQueue<TaskCompletionSource, long> _due = new();
    private readonly Thread _thread;
    private bool _stopped;

    private PreciseTimer()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "bench first-token timer" };
        _thread.Start();
    }

    /// <summary>A timer where the machine has one (Linux, nanosecond <see cref="Stopwatch"/>); else null (use Task.Delay).</summary>
    public static PreciseTimer? TryCreate() => IsAvailable ? new PreciseTimer() : null;

    public static bool IsAvailable => OperatingSystem.IsLinux() && Stopwatch.Frequency == 1_000_000_000;

    /// <summary>Completes (on the thread pool) once <see cref="Stopwatch.GetTimestamp"/> has reached <paramref name="due"/>.</summary>
    public Task WaitUntilAsync(long due)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_due)
        {
            _due.Enqueue(waiter, due);
            if (_due.TryPeek(out var first, out _) && ReferenceEquals(first, waiter))
            {
                Monitor.Pulse(_due); // an earlier deadline than the one the thread waits for
            }
        }

        return waiter.Task;
    }

    private void Run()
    {
        // The default 50 µs slack would let the kernel defer every wake-up; without 1 ns this timer is not what it says.
        if (SetTimerSlack(PrSetTimerSlack, 1, 0, 0, 0) != 0)
        {
            throw new InvalidOperationException("prctl(PR_SET_TIMERSLACK) failed: the first-token timer cannot be precise");
        }

        while (true)
        {
            long next = 0;
            lock (_due)
            {
                while (!_stopped && !_due.TryPeek(out _, out next))
                {
                    Monitor.Wait(_due);
                }

                if (_stopped)
                {
                    return;
                }

                var remaining = next - Stopwatch.GetTimestamp();
                if (remaining > CoarseWaitThreshold)
                {
                    // Far off: a coarse wait that a new, earlier deadline can cut short; then look again.
                    Monitor.Wait(_due, TimeSpan.FromTicks((remaining - CoarseWaitThreshold / 2) * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
                    continue;
                }
            }

            var until = new Timespec(next / 1_000_000_000, next % 1_000_000_000);
            int error;
            while ((error = ClockNanosleep(ClockMonotonic, TimerAbsolute, in until, IntPtr.Zero)) != 0)
            {
                // A signal woke the thread early: sleep again until the deadline. Any other error would make this
                // loop spin, so the upstream process stops instead (the bench then fails with it).
                if (error != Eintr)
                {
                    throw new InvalidOperationException($"clock_nanosleep failed with errno {error}");
                }
            }

            lock (_due)
            {
                var now = Stopwatch.GetTimestamp();
                while (_due.TryPeek(out var waiter, out var due) && due <= now)
                {
                    _due.Dequeue();
                    waiter.TrySetResult();
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_due)
        {
            _stopped = true;
            Monitor.Pulse(_due);
        }

        _thread.Join();
    }

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct Timespec(long seconds, long nanoseconds)
    {
        public readonly long Seconds = seconds;
        public readonly long Nanoseconds = nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, in Timespec request, IntPtr remaining);

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int SetTimerSlack(int option, ulong value, ulong unused2, ulong unused3, ulong unused4);
}
