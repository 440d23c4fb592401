using System.Buffers.Binary;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;
using PrivateMl.Tee.EventLog;

namespace PrivateMl.Tee.Tests.EventLog;

public sealed class CcelReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pml-ccel-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void MissingTable_IsNull()
    {
        Assert.Null(CcelReader.ReadOrNull(Path.Combine(_dir, "CCEL")));
    }

    [Fact]
    public void Reads_AndParsesTheTable()
    {
        var path = Path.Combine(_dir, "CCEL");
        File.WriteAllBytes(path, [.. Header(), .. Event(3, 6, new byte[48], [7]), .. U32(0xFFFF_FFFF)]);

        var e = Assert.Single(CcelReader.ReadOrNull(path)!);

        Assert.Equal(new TdxEvent(2, 6, new byte[48], "", [7]), e);
    }

    [Fact]
    public void CorruptTable_IsTypedError()
    {
        var path = Path.Combine(_dir, "CCEL");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Equal(ErrorCode.EventLogMalformed, Assert.Throws<AttestationException>(() => CcelReader.ReadOrNull(path)).Code);
    }

    private static byte[] Header() => [.. U32(0), .. U32(3), .. new byte[20], .. U32(0)];

    private static byte[] Event(uint index, uint type, byte[] sha384, byte[] data) =>
        [.. U32(index), .. U32(type), .. U32(1), 0x0C, 0x00, .. sha384, .. U32((uint)data.Length), .. data];

    private static byte[] U32(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return b;
    }
}
