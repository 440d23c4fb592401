using System.Buffers.Binary;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>Byte layout of NVIDIA's "attestation report": SPDM 1.1 GET_MEASUREMENTS request ‖ MEASUREMENTS response.</summary>
public static class SpdmLayout
{
    public const byte Version11 = 0x11;
    public const byte GetMeasurements = 0xE0;
    public const byte Measurements = 0x60;
    public const int NonceSize = 32;
    public const int RequestSize = 37;
    public const int RequestNonceOffset = 4;
    public const int ResponseHeaderSize = 8;
    public const int SignatureSize = 96;
    public const int DigestSize = 48;

    /// <summary>Largest report accepted: NVML's buffer is 0x2000 bytes.</summary>
    public const int MaxReportSize = 0x2000;
}

/// <summary>One DMTF measurement block: 1-based SPDM index and the digest (48 bytes on GPUs and NVSwitches).</summary>
public sealed record SpdmMeasurementBlock(int Index, byte Specification, byte ValueType, ReadOnlyMemory<byte> Value)
{
    /// <summary>The RIM index (SPDM index − 1).</summary>
    public int RimIndex => Index - 1;
}

/// <summary>
/// A parsed GET_MEASUREMENTS request and MEASUREMENTS response as NVML returns them. Parsing checks every declared
/// length against the bytes that remain before slicing; the signature is located by parsing (offset
/// <c>79 + L + O</c>), never as "the last 96 bytes", and bytes after it are counted in <see cref="TrailingBytes"/>.
/// </summary>
public sealed class SpdmMeasurementReport
{
    private SpdmMeasurementReport(byte[] raw) => Raw = raw;

    /// <summary>The whole report as received (including any trailing bytes).</summary>
    public byte[] Raw { get; }

    public byte RequestVersion { get; private init; }
    public byte RequestParam1 { get; private init; }
    public byte RequestParam2 { get; private init; }
    public byte SlotId { get; private init; }

    /// <summary>The requester's nonce (request bytes 4..35): the value compared with the caller's nonce.</summary>
    public ReadOnlyMemory<byte> RequestNonce => Raw.AsMemory(SpdmLayout.RequestNonceOffset, SpdmLayout.NonceSize);

    public byte ResponseVersion { get; private init; }
    public int NumberOfBlocks { get; private init; }
    public int MeasurementRecordLength { get; private init; }
    public IReadOnlyList<SpdmMeasurementBlock> Blocks { get; private init; } = [];

    /// <summary>The responder's nonce (not compared with anything; it is part of the signed bytes).</summary>
    public ReadOnlyMemory<byte> ResponseNonce { get; private init; }

    public ReadOnlyMemory<byte> OpaqueData { get; private init; }

    /// <summary>Offset of the 96-byte signature = length of the signed bytes.</summary>
    public int SignatureOffset { get; private init; }

    /// <summary>The signed bytes: request ‖ response without signature.</summary>
    public ReadOnlyMemory<byte> SignedBytes => Raw.AsMemory(0, SignatureOffset);

    /// <summary>ECDSA P-384 signature, raw r ‖ s.</summary>
    public ReadOnlyMemory<byte> Signature => Raw.AsMemory(SignatureOffset, SpdmLayout.SignatureSize);

    /// <summary>Bytes after the signature (one real capture carries a single 0x00).</summary>
    public int TrailingBytes => Raw.Length - SignatureOffset - SpdmLayout.SignatureSize;

    /// <summary>Looks up a block by its 1-based SPDM index.</summary>
    public SpdmMeasurementBlock? FindBlock(int spdmIndex)
    {
        foreach (var block in Blocks)
        {
            if (block.Index == spdmIndex)
            {
                return block;
            }
        }

        return null;
    }

    /// <summary>Parses a report; throws <see cref="AttestationException"/> (only) on malformed input.</summary>
    public static SpdmMeasurementReport Parse(ReadOnlySpan<byte> report)
    {
        if (report.Length > SpdmLayout.MaxReportSize)
        {
            throw new AttestationException(ErrorCode.GpuEvidenceTooLarge, $"attestation report is {report.Length} bytes; at most {SpdmLayout.MaxReportSize} are accepted");
        }

        if (report.Length < SpdmLayout.RequestSize + SpdmLayout.ResponseHeaderSize)
        {
            throw Truncated("request and response header", report.Length);
        }

        if (report[0] != SpdmLayout.Version11 || report[SpdmLayout.RequestSize] != SpdmLayout.Version11)
        {
            throw new AttestationException(ErrorCode.SpdmVersionUnsupported, $"SPDM version 0x{report[0]:x2}/0x{report[SpdmLayout.RequestSize]:x2}; only 1.1 (0x11) is supported");
        }

        if (report[1] != SpdmLayout.GetMeasurements)
        {
            throw Malformed($"request code 0x{report[1]:x2} is not GET_MEASUREMENTS (0xe0)");
        }

        if ((report[2] & 1) == 0)
        {
            throw Malformed("the request did not ask for a signature (Param1 bit 0 clear)");
        }

        var r = SpdmLayout.RequestSize;
        if (report[r + 1] != SpdmLayout.Measurements)
        {
            throw Malformed($"response code 0x{report[r + 1]:x2} is not MEASUREMENTS (0x60)");
        }

        int blockCount = report[r + 4];
        if (blockCount == 0)
        {
            throw Malformed("the response carries no measurement blocks");
        }

        var recordLength = report[r + 5] | (report[r + 6] << 8) | (report[r + 7] << 16);
        var recordStart = r + SpdmLayout.ResponseHeaderSize;
        if (recordLength > report.Length - recordStart)
        {
            throw Truncated("measurement record", report.Length);
        }

        var raw = report.ToArray();
        var blocks = ParseBlocks(raw.AsMemory(recordStart, recordLength), blockCount);
        var pos = recordStart + recordLength;
        if (report.Length - pos < SpdmLayout.NonceSize + 2)
        {
            throw Truncated("response nonce and opaque length", report.Length);
        }

        var responseNonce = raw.AsMemory(pos, SpdmLayout.NonceSize);
        pos += SpdmLayout.NonceSize;
        int opaqueLength = BinaryPrimitives.ReadUInt16LittleEndian(report[pos..]);
        pos += 2;
        if (opaqueLength > report.Length - pos)
        {
            throw Truncated("opaque data", report.Length);
        }

        var opaque = raw.AsMemory(pos, opaqueLength);
        pos += opaqueLength;
        if (report.Length - pos < SpdmLayout.SignatureSize)
        {
            throw Truncated("signature", report.Length);
        }

        return new SpdmMeasurementReport(raw)
        {
            RequestVersion = report[0],
            RequestParam1 = report[2],
            RequestParam2 = report[3],
            SlotId = report[36],
            ResponseVersion = report[r],
            NumberOfBlocks = blockCount,
            MeasurementRecordLength = recordLength,
            Blocks = blocks,
            ResponseNonce = responseNonce,
            OpaqueData = opaque,
            SignatureOffset = pos,
        };
    }

    private static List<SpdmMeasurementBlock> ParseBlocks(ReadOnlyMemory<byte> record, int count)
    {
        var span = record.Span;
        var blocks = new List<SpdmMeasurementBlock>(count);
        var pos = 0;
        for (var i = 0; i < count; i++)
        {
            if (span.Length - pos < 4)
            {
                throw Malformed($"measurement block {i} header runs past the record");
            }

            int index = span[pos];
            var spec = span[pos + 1];
            int size = BinaryPrimitives.ReadUInt16LittleEndian(span[(pos + 2)..]);
            pos += 4;
            if (spec != 0x01)
            {
                throw Malformed($"measurement block {index}: specification 0x{spec:x2} is not DMTF (0x01)");
            }

            if (size < 3 || size > span.Length - pos)
            {
                throw Malformed($"measurement block {index}: size {size} does not fit the record");
            }

            var valueType = span[pos];
            int valueSize = BinaryPrimitives.ReadUInt16LittleEndian(span[(pos + 1)..]);
            if (valueSize != size - 3)
            {
                throw Malformed($"measurement block {index}: value size {valueSize} disagrees with block size {size}");
            }

            blocks.Add(new SpdmMeasurementBlock(index, spec, valueType, record.Slice(pos + 3, valueSize)));
            pos += size;
        }

        if (pos != span.Length)
        {
            throw Malformed($"the {count} measurement blocks use {pos} bytes but the record declares {span.Length}");
        }

        return blocks;
    }

    private static AttestationException Truncated(string part, int length) =>
        new(ErrorCode.SpdmReportTruncated, $"attestation report ({length} bytes) ends inside the {part}");

    private static AttestationException Malformed(string why) => new(ErrorCode.SpdmMessageMalformed, why);
}
