using System.Security.Cryptography;
using System.Text;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Agent.Runtime;

/// <summary>
/// The boot half of a simulated TD: a fixed, clearly labelled firmware/kernel event log for RTMR0–2 and a TD profile
/// whose RTMR0–2 are exactly what that log replays to, so clients (the npm SDK's <c>replayRtmrs()</c>, our verifier)
/// can replay every RTMR of a simulated quote. Each agent start is a simulated reboot: RTMR3 starts from zero and the
/// boot identity is measured again.
/// </summary>
public static class SimulatedBoot
{
    /// <summary>Subdirectory of the agent state that holds the agent's simulator.</summary>
    public const string SimulatorDirectory = "tdx-simulator";

    /// <summary>RTMR0–2 events (event name "" like CCEL entries; digest = SHA-384 of the payload).</summary>
    public static IReadOnlyList<TdxEvent> BootEvents { get; } =
    [
        Boot(0, 0x80000001, "PrivateMl SIMULATED firmware: TD HOB / platform configuration"),
        Boot(0, 0x80000001, "PrivateMl SIMULATED firmware: secure boot variables"),
        Boot(0, 0x00000004, "PrivateMl SIMULATED firmware: separator"),
        Boot(1, 0x80000003, "PrivateMl SIMULATED boot loader: kernel image"),
        Boot(1, 0x00000004, "PrivateMl SIMULATED boot loader: separator"),
        Boot(2, 0x00000006, "PrivateMl SIMULATED kernel command line: console=ttyS0 dstack.rootfs_hash=simulated"),
        Boot(2, 0x00000006, "PrivateMl SIMULATED initrd"),
    ];

    /// <summary><paramref name="baseProfile"/> (or the simulator default) with RTMR0–2 set to the replay of <see cref="BootEvents"/>.</summary>
    public static TdProfile Profile(TdProfile? baseProfile = null)
    {
        var replay = RtmrReplay.Replay(BootEvents);
        return (baseProfile ?? new TdProfile()) with
        {
            Rtmr0 = replay.Rtmr0.ToArray(),
            Rtmr1 = replay.Rtmr1.ToArray(),
            Rtmr2 = replay.Rtmr2.ToArray(),
        };
    }

    /// <summary>
    /// Opens (or creates) the simulator under <c>&lt;stateDirectory&gt;/tdx-simulator</c> with <see cref="Profile"/>, and
    /// resets its runtime measurements (a fresh simulated boot). Throws <see cref="InvalidOperationException"/> when an
    /// existing simulator there was made with other RTMR0–2 (its quotes could not be replayed).
    /// </summary>
    public static SimulatedTdxDevice OpenDevice(string stateDirectory, TimeProvider timeProvider)
    {
        var directory = Path.Combine(stateDirectory, SimulatorDirectory);
        var device = SimulatedTdxDevice.OpenOrCreate(directory, timeProvider, new SimulatedPlatformOptions { Profile = Profile() });
        device.ResetRuntimeMeasurements();
        var replay = RtmrReplay.Replay(BootEvents);
        for (var i = 0; i < 3; i++)
        {
            if (!device.GetRtmr(i).AsSpan().SequenceEqual(replay[i].Span))
            {
                device.Dispose();
                throw new InvalidOperationException(
                    $"the simulator in {directory} was created with a different RTMR{i}; its quotes would not replay against the simulated boot log. Remove that directory to re-create it.");
            }
        }

        return device;
    }

    private static TdxEvent Boot(int imr, uint eventType, string description)
    {
        var payload = Encoding.UTF8.GetBytes(description);
        return new TdxEvent(imr, eventType, SHA384.HashData(payload), "", payload);
    }
}
