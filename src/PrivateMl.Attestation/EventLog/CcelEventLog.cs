using System.Buffers.Binary;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.EventLog;

/// <summary>
/// Parses the boot-time event log a TDX firmware leaves in the ACPI CCEL table (TCG PC Client crypto-agile format)
/// into <see cref="TdxEvent"/>s the way dstack does: the first record (TCG 1.2 layout: u32 index, u32 type, SHA-1[20],
/// u32 size, data — the Spec ID event) is skipped; then TCG_PCR_EVENT2 records (u32 index, u32 type, u32 digest
/// count, {u16 algorithm, digest}×count, u32 size, data) follow until an index of 0xFFFFFFFF or the end of the data.
/// Each record must carry exactly one SHA-384 digest. CC measurement register index 1..4 becomes imr 0..3 (RTMR0..3);
/// records for index 0 (MRTD) are dropped. Names are empty, payloads are the raw event data. Little-endian throughout.
/// </summary>
public static class CcelEventLog
{
    /// <summary>TPM_ALG_SHA384.</summary>
    public const ushort Sha384AlgorithmId = 0x000C;

    /// <summary>Largest CCEL log area accepted.</summary>
    public const int MaxLogBytes = 16 * 1024 * 1024;

    private const int MaxDigestCount = 8;

    public static IReadOnlyList<TdxEvent> Parse(ReadOnlySpan<byte> log)
    {
        if (log.Length > MaxLogBytes)
        {
            throw new AttestationException(ErrorCode.EventLogTooLarge, $"the CCEL log is {log.Length} bytes; the limit is {MaxLogBytes}");
        }

        var reader = new Reader(log);

        // TCG 1.2-format header record carrying TCG_EfiSpecIDEventStruct.
        reader.UInt32("Spec ID event index");
        reader.UInt32("Spec ID event type");
        reader.Bytes(20, "Spec ID event SHA-1 digest");
        var headerSize = reader.UInt32("Spec ID event size");
        reader.Bytes(headerSize, "Spec ID event data");

        var events = new List<TdxEvent>();
        var number = 0;
        while (reader.Remaining >= 4)
        {
            var index = reader.UInt32($"event {number} index");
            if (index == 0xFFFF_FFFF)
            {
                break;
            }

            var type = reader.UInt32($"event {number} type");
            var digestCount = reader.UInt32($"event {number} digest count");
            if (digestCount > MaxDigestCount)
            {
                throw Malformed($"CCEL event {number} claims {digestCount} digests");
            }

            ReadOnlySpan<byte> digest = default;
            for (var d = 0; d < digestCount; d++)
            {
                var algorithm = reader.UInt16($"event {number} digest algorithm");
                var size = algorithm switch
                {
                    0x0004 => 20,
                    0x000B => 32,
                    Sha384AlgorithmId => 48,
                    0x000D => 64,
                    _ => throw Malformed($"CCEL event {number} uses unknown digest algorithm 0x{algorithm:x4}"),
                };
                var value = reader.Bytes((uint)size, $"event {number} digest");
                if (algorithm == Sha384AlgorithmId)
                {
                    digest = value;
                }
            }

            var eventSize = reader.UInt32($"event {number} size");
            var data = reader.Bytes(eventSize, $"event {number} data");

            if (index != 0)
            {
                if (digestCount != 1 || digest.IsEmpty)
                {
                    throw Malformed($"CCEL event {number} has {digestCount} digests; a TDX log carries exactly one SHA-384 digest per event");
                }

                if (index > TdxEvent.RtmrCount)
                {
                    throw Malformed($"CCEL event {number} is for measurement register {index}; TDX has RTMR0..3 (indices 1..4)");
                }

                if (events.Count == TdxEventLogLimits.MaxEvents)
                {
                    throw new AttestationException(ErrorCode.EventLogTooLarge, $"the CCEL log has more than {TdxEventLogLimits.MaxEvents} events");
                }

                events.Add(new TdxEvent((int)index - 1, type, digest, "", data));
            }

            number++;
        }

        return events;
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.EventLogMalformed, message);

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _offset;

        public readonly int Remaining => _data.Length - _offset;

        public uint UInt32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4, what));

        public ushort UInt16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2, what));

        public ReadOnlySpan<byte> Bytes(uint count, string what)
        {
            if (count > (uint)Remaining)
            {
                throw Malformed($"the CCEL log ends inside {what} (needs {count} bytes at offset {_offset}, {Remaining} left)");
            }

            var slice = _data.Slice(_offset, (int)count);
            _offset += (int)count;
            return slice;
        }
    }
}
