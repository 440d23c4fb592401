using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.EventLog;

public class TdxEventLogJsonTests
{
    private const string AppIdDigest = "b01c7a2e6a406ae9cd5aa81451e4614e112b8f404df12e6ef506962c1a5279a94dc58da0923c4b7db89e26da9e538302";

    [Fact]
    public void Serialize_WritesDstackKeyOrderCompactLowercaseHex()
    {
        var e = TdxEvent.CreateRuntime("app-id", Convert.FromHexString("EA549F02E1A25FABD1CB788380E033EC5461B2FF"));

        Assert.Equal(
            "{\"imr\":3,\"event_type\":134217729,\"digest\":\"" + AppIdDigest + "\",\"event\":\"app-id\",\"event_payload\":\"ea549f02e1a25fabd1cb788380e033ec5461b2ff\"}",
            e.ToJson());
        Assert.Equal("[" + e.ToJson() + "," + e.ToJson() + "]", TdxEventLog.Serialize([e, e]));
        Assert.Equal("[]", TdxEventLog.Serialize([]));
    }

    [Fact]
    public void Serialize_EscapesNamesAsSerdeJsonDoes()
    {
        var e = new TdxEvent(0, 1, new byte[48], "a\"b\\c\nd\u0001é<", []);
        Assert.Contains("\"event\":\"a\\\"b\\\\c\\nd\\u0001é<\"", e.ToJson(), StringComparison.Ordinal);
        Assert.Equal(e, TdxEventLog.ParseEntry(e.ToJson()));
    }

    [Theory]
    [MemberData(nameof(DstackEventLogVector.All), MemberType = typeof(DstackEventLogVector))]
    public void Parse_RoundTripsExactly(DstackEventLogVector vector)
    {
        var events = vector.ToEvents();
        var json = TdxEventLog.Serialize(events);
        var parsed = TdxEventLog.Parse(json);

        Assert.Equal(events, parsed);
        Assert.Equal(json, TdxEventLog.Serialize(parsed));
        Assert.Equal(events, TdxEventLog.ParseLines(TdxEventLog.SerializeLines(events)));
    }

    [Fact]
    public void Parse_AcceptsAnyKeyOrder_IgnoresUnknownKeys_AndUpperCaseHex()
    {
        var json = "[{\"event_payload\":\"EA549F02E1A25FABD1CB788380E033EC5461B2FF\",\"event\":\"app-id\",\"extra\":{\"x\":[1,2]},\"digest\":\"" + AppIdDigest.ToUpperInvariant() + "\",\"event_type\":134217729,\"imr\":3}]";
        var e = Assert.Single(TdxEventLog.Parse(json));

        Assert.Equal("app-id", e.Event);
        Assert.Equal(AppIdDigest, Convert.ToHexStringLower(e.Digest.Span));
        Assert.False(e.HasMismatchedDigest);
    }

    [Fact]
    public void Parse_ReadsFirmwareEventsWithEmptyName()
    {
        var digest = new string('a', 96);
        var e = Assert.Single(TdxEventLog.Parse("[{\"imr\":0,\"event_type\":2147483659,\"digest\":\"" + digest + "\",\"event\":\"\",\"event_payload\":\"00\"}]"));

        Assert.False(e.IsRuntimeEvent);
        Assert.Equal(0x8000000Bu, e.EventType);
        Assert.Equal(Convert.FromHexString(digest), e.EffectiveDigest());
    }

    public static TheoryData<string, string, ErrorCode> MalformedLogs => new()
    {
        { "not an array", "{}", ErrorCode.EventLogMalformed },
        { "not JSON", "[{", ErrorCode.EventLogMalformed },
        { "empty", "", ErrorCode.EventLogMalformed },
        { "trailing data", "[] []", ErrorCode.EventLogMalformed },
        { "entry not an object", "[1]", ErrorCode.EventLogMalformed },
        { "missing event_payload", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\"}]", ErrorCode.EventLogMalformed },
        { "missing imr", "[{\"event_type\":1,\"digest\":\"" + new string('0', 96) + "\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "imr 4", "[{\"imr\":4,\"event_type\":1,\"digest\":\"" + new string('0', 96) + "\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "negative imr", "[{\"imr\":-1,\"event_type\":1,\"digest\":\"" + new string('0', 96) + "\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "imr as string", "[{\"imr\":\"3\",\"event_type\":1,\"digest\":\"" + new string('0', 96) + "\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "event_type too big", "[{\"imr\":0,\"event_type\":4294967296,\"digest\":\"" + new string('0', 96) + "\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "odd hex", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"abc\"}]", ErrorCode.EventLogMalformed },
        { "non-hex", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"zz\"}]", ErrorCode.EventLogMalformed },
        { "0x prefix", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"0x00\"}]", ErrorCode.EventLogMalformed },
        { "47-byte digest", "[{\"imr\":0,\"event_type\":1,\"digest\":\"" + new string('0', 94) + "\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "firmware event without digest", "[{\"imr\":0,\"event_type\":1,\"digest\":\"\",\"event\":\"\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "duplicate imr", "[{\"imr\":0,\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "duplicate event", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event\":\"y\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "version 3", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"\",\"version\":3}]", ErrorCode.EventLogMalformed },
        { "lone surrogate in runtime name", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"\\ud800\",\"event_payload\":\"\"}]", ErrorCode.EventLogMalformed },
        { "bad v2 preimage", "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"\",\"version\":2,\"preimage\":\"00\"}]", ErrorCode.EventLogDigestMismatch },
    };

    [Theory]
    [MemberData(nameof(MalformedLogs))]
    public void Rejects_MalformedLog(string name, string json, ErrorCode expected)
    {
        var e = Assert.Throws<AttestationException>(() => TdxEventLog.Parse(json));
        Assert.True(expected == e.Code, $"{name}: got {e.Code}: {e.Message}");
    }

    [Fact]
    public void Rejects_LogOverTheSizeLimit_BeforeParsing()
    {
        var huge = new byte[TdxEventLogLimits.MaxEventLogBytes + 1];
        Assert.Equal(ErrorCode.EventLogTooLarge, Assert.Throws<AttestationException>(() => TdxEventLog.Parse(huge)).Code);
    }

    [Fact]
    public void Rejects_LogWithTooManyEntries()
    {
        var one = "{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"\",\"event_payload\":\"\"}";
        var json = "[" + string.Join(',', Enumerable.Repeat(one, TdxEventLogLimits.MaxEvents + 1)) + "]";
        Assert.Equal(ErrorCode.EventLogTooLarge, Assert.Throws<AttestationException>(() => TdxEventLog.Parse(json)).Code);
    }

    [Fact]
    public void Rejects_OversizedPayload()
    {
        var json = "[{\"imr\":3,\"event_type\":134217729,\"digest\":\"\",\"event\":\"x\",\"event_payload\":\"" + new string('0', (TdxEventLogLimits.MaxPayloadBytes * 2) + 2) + "\"}]";
        Assert.Equal(ErrorCode.EventLogTooLarge, Assert.Throws<AttestationException>(() => TdxEventLog.Parse(json)).Code);
    }

    [Fact]
    public void ParseLines_NamesTheBadLine()
    {
        var good = TdxEvent.CreateRuntime("a", []).ToJson();
        var e = Assert.Throws<AttestationException>(() => TdxEventLog.ParseLines(good + "\n\n" + "{\"imr\":9}\n"));
        Assert.Equal(ErrorCode.EventLogMalformed, e.Code);
        Assert.StartsWith("line 3:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void V2_DigestIsSha384OfCanonicalJson()
    {
        // dstack HEAD cc-eventlog runtime_events.rs test: canonical form of ("compose-hash", abcd).
        var preimage = TdxEvent.RuntimeDigestPreimage("compose-hash", [0xab, 0xcd], TdxEventLogVersion.V2);
        Assert.Equal("{\"name\":\"compose-hash\",\"payload\":\"abcd\",\"type\":134217729}", Encoding.UTF8.GetString(preimage));

        var v2 = TdxEvent.CreateRuntime("compose-hash", [0xab, 0xcd], TdxEventLogVersion.V2);
        var v1 = TdxEvent.CreateRuntime("compose-hash", [0xab, 0xcd]);
        Assert.Equal(System.Security.Cryptography.SHA384.HashData(preimage), v2.Digest.ToArray());
        Assert.NotEqual(v1.Digest.ToArray(), v2.Digest.ToArray());
    }

    [Fact]
    public void V2_SerializesVersionAndPreimage_AndRoundTrips()
    {
        var v2 = TdxEvent.CreateRuntime("n\"x", [1, 2], TdxEventLogVersion.V2);
        var json = v2.ToJson();

        Assert.Contains(",\"version\":2,\"preimage\":\"", json, StringComparison.Ordinal);
        var back = TdxEventLog.ParseEntry(json);
        Assert.Equal(v2, back);
        Assert.Equal(TdxEventLogVersion.V2, back.Version);
        Assert.False(back.HasMismatchedDigest);
    }

    [Fact]
    public void JsonConverter_WritesTheSameShape_AndReads()
    {
        var e = TdxEvent.CreateRuntime("app-id", [1, 2, 3]);
        var viaConverter = JsonSerializer.Serialize(e);
        Assert.Equal(e.ToJson(), viaConverter);
        Assert.Equal(e, JsonSerializer.Deserialize<TdxEvent>(viaConverter));

        var list = JsonSerializer.Deserialize<List<TdxEvent>>(TdxEventLog.Serialize([e, e]))!;
        Assert.Equal(2, list.Count);

        var ex = Assert.Throws<AttestationException>(() => JsonSerializer.Deserialize<TdxEvent>("{\"imr\":7}"));
        Assert.Equal(ErrorCode.EventLogMalformed, ex.Code);
    }
}
