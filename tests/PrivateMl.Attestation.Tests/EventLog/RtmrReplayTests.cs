using System.Security.Cryptography;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.EventLog;

public class RtmrReplayTests
{
    [Fact]
    public void RuntimeDigest_MatchesDstackVectorA2()
    {
        // dstack.md Appendix A2: SHA-384(01000008 ‖ 3a ‖ "app-id" ‖ 3a ‖ payload).
        var digest = TdxEvent.ComputeRuntimeDigest("app-id", Convert.FromHexString("ea549f02e1a25fabd1cb788380e033ec5461b2ff"));
        Assert.Equal("b01c7a2e6a406ae9cd5aa81451e4614e112b8f404df12e6ef506962c1a5279a94dc58da0923c4b7db89e26da9e538302", Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void RuntimeDigestPreimage_IsTypeColonNameColonPayload()
    {
        var preimage = TdxEvent.RuntimeDigestPreimage("ab", [0xff]);
        Assert.Equal("010000083a61623aff", Convert.ToHexStringLower(preimage));
    }

    [Theory]
    [MemberData(nameof(DstackEventLogVector.All), MemberType = typeof(DstackEventLogVector))]
    public void CreateRuntime_ReproducesEveryLoggedDigest(DstackEventLogVector vector)
    {
        foreach (var e in vector.Events)
        {
            var created = TdxEvent.CreateRuntime(e.Name, e.Payload);
            Assert.Equal(e.DigestHex, Convert.ToHexStringLower(created.Digest.Span));
            Assert.Equal(3, created.Imr);
        }
    }

    [Theory]
    [MemberData(nameof(DstackEventLogVector.All), MemberType = typeof(DstackEventLogVector))]
    public void Replay_EqualsTheQuoteRtmr3(DstackEventLogVector vector)
    {
        var replayed = RtmrReplay.Replay(vector.ToEvents());

        Assert.Equal(vector.Rtmr3Hex, replayed.ToHex(3));
        Assert.Equal(vector.Events.Count, replayed.EventCount(3));
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(new byte[48], replayed[i].ToArray());
            Assert.Equal(0, replayed.EventCount(i));
        }
    }

    [Theory]
    [MemberData(nameof(DstackEventLogVector.All), MemberType = typeof(DstackEventLogVector))]
    public void Replay_OfSerializedAndParsedLog_EqualsTheQuoteRtmr3(DstackEventLogVector vector)
    {
        var json = TdxEventLog.Serialize(vector.ToEvents());
        var parsed = TdxEventLog.Parse(json);
        Assert.Equal(vector.Rtmr3Hex, RtmrReplay.Replay(parsed).ToHex(3));
    }

    [Fact]
    public void Replay_SeparatesRtmrsByImr()
    {
        var boot0 = new TdxEvent(0, 4, SHA384.HashData([1]), "", [0, 0, 0, 0]);
        var boot2 = new TdxEvent(2, 6, SHA384.HashData([2]), "", [9]);
        var replayed = RtmrReplay.Replay([boot0, boot2]);

        var expected0 = SHA384.HashData([.. new byte[48], .. SHA384.HashData([1])]);
        var expected2 = SHA384.HashData([.. new byte[48], .. SHA384.HashData([2])]);
        Assert.Equal(expected0, replayed.Rtmr0.ToArray());
        Assert.Equal(new byte[48], replayed.Rtmr1.ToArray());
        Assert.Equal(expected2, replayed.Rtmr2.ToArray());
        Assert.True(replayed.Matches(2, expected2));
        Assert.False(replayed.Matches(0, expected2));
    }

    [Fact]
    public void Rejects_RuntimeEventWhosePayloadWasChangedUnderItsDigest()
    {
        var events = DstackEventLogVector.Production.ToEvents().ToList();
        var composeIndex = events.FindIndex(e => e.Event == "compose-hash");
        var original = events[composeIndex];
        var forged = original.EventPayload.ToArray();
        forged[0] ^= 1;
        events[composeIndex] = new TdxEvent(3, TdxEvent.RuntimeEventType, original.Digest.Span, original.Event, forged);

        var e = Assert.Throws<AttestationException>(() => RtmrReplay.Replay(events));
        Assert.Equal(ErrorCode.EventLogDigestMismatch, e.Code);
    }

    [Fact]
    public void Rejects_RuntimeEventWhoseNameWasChangedUnderItsDigest()
    {
        var events = DstackEventLogVector.Simulator.ToEvents().ToList();
        var original = events[1];
        events[1] = new TdxEvent(3, TdxEvent.RuntimeEventType, original.Digest.Span, "app-iD", original.EventPayload.Span);

        Assert.Equal(ErrorCode.EventLogDigestMismatch, Assert.Throws<AttestationException>(() => RtmrReplay.Replay(events)).Code);
    }

    [Fact]
    public void RuntimeEventWithoutLoggedDigest_IsReplayedFromItsContent()
    {
        var withDigests = DstackEventLogVector.Simulator.ToEvents();
        var stripped = withDigests.Select(e => new TdxEvent(e.Imr, e.EventType, [], e.Event, e.EventPayload.Span)).ToList();

        Assert.Equal(DstackEventLogVector.Simulator.Rtmr3Hex, RtmrReplay.Replay(stripped).ToHex(3));
        Assert.Equal(withDigests.Select(e => e.ToJson()), stripped.Select(e => e.ToJson()));
    }

    [Theory]
    [MemberData(nameof(DstackEventLogVector.All), MemberType = typeof(DstackEventLogVector))]
    public void CheckAgainstQuote_PassesForTheRealLog(DstackEventLogVector vector)
    {
        var checks = RtmrReplay.CheckAgainstQuote(vector.ToEvents(), QuoteRtmrs(vector.Rtmr3Hex));

        Assert.Equal(["event-log.digests", "event-log.rtmr0", "event-log.rtmr1", "event-log.rtmr2", "event-log.rtmr3"], checks.Select(c => c.Name));
        Assert.All(checks, c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
    }

    [Fact]
    public void CheckAgainstQuote_FailsRtmr3_WhenAConsistentForgedEventIsAdded()
    {
        var events = DstackEventLogVector.Production.ToEvents().Append(TdxEvent.CreateRuntime("compose-hash", new byte[32])).ToList();
        var checks = RtmrReplay.CheckAgainstQuote(events, QuoteRtmrs(DstackEventLogVector.Production.Rtmr3Hex));

        Assert.Equal(CheckOutcome.Passed, checks[0].Outcome);
        Assert.Equal(CheckOutcome.Passed, checks[1].Outcome);
        Assert.Equal(CheckOutcome.Failed, checks[4].Outcome);
        Assert.Equal(ErrorCode.RtmrReplayMismatch, checks[4].Code);
    }

    [Fact]
    public void CheckAgainstQuote_SkipsRtmrs_WhenADigestIsForged()
    {
        var events = DstackEventLogVector.Simulator.ToEvents().ToList();
        var last = events[^1];
        events[^1] = new TdxEvent(3, TdxEvent.RuntimeEventType, last.Digest.Span, last.Event, [1]);

        var checks = RtmrReplay.CheckAgainstQuote(events, QuoteRtmrs(DstackEventLogVector.Simulator.Rtmr3Hex));

        Assert.Equal(CheckOutcome.Failed, checks[0].Outcome);
        Assert.Equal(ErrorCode.EventLogDigestMismatch, checks[0].Code);
        Assert.All(checks.Skip(1), c => Assert.Equal(CheckOutcome.Skipped, c.Outcome));
    }

    private static ReadOnlyMemory<byte>[] QuoteRtmrs(string rtmr3Hex) =>
        [new byte[48], new byte[48], new byte[48], Convert.FromHexString(rtmr3Hex)];
}
