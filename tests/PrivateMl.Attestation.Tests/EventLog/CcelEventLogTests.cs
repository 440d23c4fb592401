using System.Buffers.Binary;
using System.Security.Cryptography;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.EventLog;

public class CcelEventLogTests
{
    [Fact]
    public void Parses_SyntheticLog_IntoDstackEvents()
    {
        var d1 = SHA384.HashData("one"u8);
        var d2 = SHA384.HashData("two"u8);
        var log = new CcelBuilder()
            .Event(1, 0x80000001, [(0x000C, d1)], [1, 2, 3])
            .Event(0, 3, [(0x000C, new byte[48])], "MRTD event, dropped"u8.ToArray())
            .Event(4, 4, [(0x000C, d2)], [])
            .Terminate(padding: 64)
            .ToArray();

        var events = CcelEventLog.Parse(log);

        Assert.Equal(2, events.Count);
        Assert.Equal(new TdxEvent(0, 0x80000001, d1, "", [1, 2, 3]), events[0]);
        Assert.Equal(new TdxEvent(3, 4, d2, "", []), events[1]);
        var replayed = RtmrReplay.Replay(events);
        Assert.Equal(SHA384.HashData([.. new byte[48], .. d1]), replayed.Rtmr0.ToArray());
        Assert.Equal(SHA384.HashData([.. new byte[48], .. d2]), replayed.Rtmr3.ToArray());
    }

    [Fact]
    public void Parses_LogThatEndsWithoutTerminator()
    {
        var log = new CcelBuilder().Event(2, 6, [(0x000C, new byte[48])], [9]).ToArray();
        Assert.Single(CcelEventLog.Parse(log));
    }

    [Fact]
    public void Serializes_AsDstackFirmwareEntries()
    {
        var log = new CcelBuilder().Event(1, 4, [(0x000C, new byte[48])], [0, 0, 0, 0]).Terminate().ToArray();
        Assert.Equal(
            "[{\"imr\":0,\"event_type\":4,\"digest\":\"" + new string('0', 96) + "\",\"event\":\"\",\"event_payload\":\"00000000\"}]",
            TdxEventLog.Serialize(CcelEventLog.Parse(log)));
    }

    public static TheoryData<string, byte[]> MalformedLogs => new()
    {
        { "empty", [] },
        { "header cut", new CcelBuilder().ToArray()[..30] },
        { "two digests", new CcelBuilder().Event(1, 1, [(0x000C, new byte[48]), (0x000B, new byte[32])], []).ToArray() },
        { "sha-256 only", new CcelBuilder().Event(1, 1, [(0x000B, new byte[32])], []).ToArray() },
        { "no digest", new CcelBuilder().Event(1, 1, [], []).ToArray() },
        { "unknown algorithm", new CcelBuilder().Event(1, 1, [(0x0099, new byte[48])], []).ToArray() },
        { "register 5", new CcelBuilder().Event(5, 1, [(0x000C, new byte[48])], []).ToArray() },
        { "event size past end", new CcelBuilder().Event(1, 1, [(0x000C, new byte[48])], [1, 2, 3]).ToArray()[..^2] },
        { "huge digest count", Patch(new CcelBuilder().Event(1, 1, [(0x000C, new byte[48])], []).ToArray(), CcelBuilder.HeaderLength + 8, 0xFFFF_FFFF) },
        { "huge event size", Patch(new CcelBuilder().Event(1, 1, [(0x000C, new byte[48])], []).ToArray(), CcelBuilder.HeaderLength + 12 + 50, 0x7FFF_FFFF) },
    };

    [Theory]
    [MemberData(nameof(MalformedLogs))]
    public void Rejects_MalformedLog(string name, byte[] log)
    {
        var e = Assert.Throws<AttestationException>(() => CcelEventLog.Parse(log));
        Assert.True(e.Code == ErrorCode.EventLogMalformed, $"{name}: {e.Code} {e.Message}");
    }

    [Fact]
    public void Rejects_OversizedLog()
    {
        var e = Assert.Throws<AttestationException>(() => CcelEventLog.Parse(new byte[CcelEventLog.MaxLogBytes + 1]));
        Assert.Equal(ErrorCode.EventLogTooLarge, e.Code);
    }

    private static byte[] Patch(byte[] log, int offset, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(log.AsSpan(offset), value);
        return log;
    }

    /// <summary>Writes a CCEL log: a TCG 1.2 Spec ID header record, then TCG_PCR_EVENT2 records.</summary>
    private sealed class CcelBuilder
    {
        // Spec ID data: "Spec ID Event03\0", platform class, version 0.2.0, uintn 2, one algorithm (SHA-384, 48), no vendor info.
        private static readonly byte[] SpecId =
        [
            .. "Spec ID Event03\0"u8, 0, 0, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0x0C, 0, 48, 0, 0,
        ];

        private readonly List<byte> _bytes = [];

        public CcelBuilder()
        {
            U32(0);
            U32(3); // EV_NO_ACTION
            _bytes.AddRange(new byte[20]);
            U32((uint)SpecId.Length);
            _bytes.AddRange(SpecId);
        }

        public static int HeaderLength => 4 + 4 + 20 + 4 + SpecId.Length;

        public CcelBuilder Event(uint index, uint type, (ushort Algorithm, byte[] Digest)[] digests, byte[] data)
        {
            U32(index);
            U32(type);
            U32((uint)digests.Length);
            foreach (var (algorithm, digest) in digests)
            {
                _bytes.Add((byte)algorithm);
                _bytes.Add((byte)(algorithm >> 8));
                _bytes.AddRange(digest);
            }

            U32((uint)data.Length);
            _bytes.AddRange(data);
            return this;
        }

        public CcelBuilder Terminate(int padding = 0)
        {
            U32(0xFFFF_FFFF);
            _bytes.AddRange(Enumerable.Repeat((byte)0xFF, padding));
            return this;
        }

        public byte[] ToArray() => [.. _bytes];

        private void U32(uint value)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, value);
            _bytes.AddRange(b.ToArray());
        }
    }
}
