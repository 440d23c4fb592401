using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.EventLog;

/// <summary>The four RTMR values an event log replays to (48 bytes each).</summary>
public sealed class ReplayedRtmrs
{
    private readonly byte[][] _values;
    private readonly int[] _counts;

    internal ReplayedRtmrs(byte[][] values, int[] counts)
    {
        _values = values;
        _counts = counts;
    }

    /// <summary>RTMR <paramref name="index"/> (0..3).</summary>
    public ReadOnlyMemory<byte> this[int index] => _values[CheckIndex(index)];

    public ReadOnlyMemory<byte> Rtmr0 => _values[0];

    public ReadOnlyMemory<byte> Rtmr1 => _values[1];

    public ReadOnlyMemory<byte> Rtmr2 => _values[2];

    public ReadOnlyMemory<byte> Rtmr3 => _values[3];

    /// <summary>How many log entries extended RTMR <paramref name="index"/>.</summary>
    public int EventCount(int index) => _counts[CheckIndex(index)];

    /// <summary>Lowercase hex of RTMR <paramref name="index"/>.</summary>
    public string ToHex(int index) => Convert.ToHexStringLower(_values[CheckIndex(index)]);

    /// <summary>True when RTMR <paramref name="index"/> equals <paramref name="expected"/> (constant-time compare).</summary>
    public bool Matches(int index, ReadOnlySpan<byte> expected) =>
        CryptographicOperations.FixedTimeEquals(_values[CheckIndex(index)], expected);

    private static int CheckIndex(int index) =>
        index is >= 0 and < TdxEvent.RtmrCount ? index : throw new ArgumentOutOfRangeException(nameof(index), index, "RTMR index is 0..3");
}

/// <summary>
/// Replays an event log into RTMR values the way the TDX module extends them: each RTMR starts at 48 zero bytes and
/// every entry does <c>RTMR = SHA-384(RTMR ‖ digest)</c> in log order. Runtime events (dstack type 0x08000001) are
/// extended with the digest recomputed from their name and payload, and a logged digest that disagrees with it is
/// rejected, so the names and payloads a reader sees are exactly what was measured.
/// </summary>
public static class RtmrReplay
{
    /// <summary>Replays <paramref name="events"/>. Throws <see cref="AttestationException"/> with
    /// <see cref="ErrorCode.EventLogDigestMismatch"/> when a runtime event's logged digest does not match its content.</summary>
    public static ReplayedRtmrs Replay(IEnumerable<TdxEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var values = new byte[TdxEvent.RtmrCount][];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = new byte[TdxEvent.DigestSize];
        }

        var counts = new int[TdxEvent.RtmrCount];
        Span<byte> buffer = stackalloc byte[2 * TdxEvent.DigestSize];
        var index = 0;
        foreach (var e in events)
        {
            ArgumentNullException.ThrowIfNull(e, nameof(events));
            if (e.HasMismatchedDigest)
            {
                throw new AttestationException(
                    ErrorCode.EventLogDigestMismatch,
                    $"event log entry {index} (\"{e.Event}\", RTMR{e.Imr}): the logged digest is not the digest of its name and payload");
            }

            var digest = e.EffectiveDigest();
            values[e.Imr].CopyTo(buffer);
            digest.CopyTo(buffer[TdxEvent.DigestSize..]);
            SHA384.HashData(buffer, values[e.Imr]);
            counts[e.Imr]++;
            index++;
        }

        return new ReplayedRtmrs(values, counts);
    }

    /// <summary>
    /// Replays <paramref name="events"/> and compares the result with the RTMRs of a quote. Returns one check for the
    /// runtime digests and one per RTMR (<c>event-log.digests</c>, <c>event-log.rtmr0</c> … <c>event-log.rtmr3</c>);
    /// never throws for bad logs.
    /// </summary>
    public static IReadOnlyList<CheckResult> CheckAgainstQuote(IEnumerable<TdxEvent> events, IReadOnlyList<ReadOnlyMemory<byte>> quoteRtmrs)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(quoteRtmrs);
        if (quoteRtmrs.Count != TdxEvent.RtmrCount)
        {
            throw new ArgumentException($"a TD quote has {TdxEvent.RtmrCount} RTMRs", nameof(quoteRtmrs));
        }

        var checks = new List<CheckResult>(5);
        ReplayedRtmrs replayed;
        try
        {
            replayed = Replay(events);
            checks.Add(CheckResult.Pass("event-log.digests", "every runtime event's digest matches its name and payload"));
        }
        catch (AttestationException e)
        {
            checks.Add(CheckResult.Fail("event-log.digests", e.Code, e.Message));
            for (var i = 0; i < TdxEvent.RtmrCount; i++)
            {
                checks.Add(CheckResult.Skip($"event-log.rtmr{i}", "the event log could not be replayed"));
            }

            return checks;
        }

        for (var i = 0; i < TdxEvent.RtmrCount; i++)
        {
            var name = $"event-log.rtmr{i}";
            checks.Add(replayed.Matches(i, quoteRtmrs[i].Span)
                ? CheckResult.Pass(name, $"{replayed.EventCount(i)} events replay to the quote's RTMR{i}")
                : CheckResult.Fail(name, ErrorCode.RtmrReplayMismatch, $"{replayed.EventCount(i)} events replay to {replayed.ToHex(i)}, the quote's RTMR{i} is {Convert.ToHexStringLower(quoteRtmrs[i].Span)}"));
        }

        return checks;
    }
}
