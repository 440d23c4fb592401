using System.Buffers.Binary;
using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.Tdx;

public sealed class QgsQuoteProviderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pml-qgs-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Request_HasQgsHeaderAndTdReport()
    {
        var report = Enumerable.Repeat((byte)0x5A, 1024).ToArray();
        var message = QgsQuoteProvider.BuildRequest(report);

        Assert.Equal(16 + 8 + 1024, message.Length);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(message));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(message.AsSpan(2)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(4)));
        Assert.Equal((uint)message.Length, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(8)));
        Assert.Equal(1024u, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(16)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(message.AsSpan(20)));
        Assert.Equal(report, message[24..]);
    }

    [Fact]
    public void Response_YieldsTheQuoteAfterTheSelectedId()
    {
        var quote = new byte[] { 1, 2, 3 };
        Assert.Equal(quote, QgsQuoteProvider.ParseResponse(Response(quote, selectedId: [9, 9])));
    }

    public static TheoryData<string, byte[]> BadResponses => new()
    {
        { "short", new byte[10] },
        { "wrong type", Response([1], type: 0) },
        { "error code", Response([1], error: 0xE001) },
        { "quote size past end", Patch(Response([1, 2]), 20, 3) },
        { "selected id past end", Patch(Response([1, 2]), 16, 0xFFFF_FFFF) },
        { "empty quote", Response([]) },
    };

    [Theory]
    [MemberData(nameof(BadResponses))]
    public void Rejects_BadResponse(string name, byte[] response)
    {
        var e = Assert.Throws<TdxDeviceException>(() => QgsQuoteProvider.ParseResponse(response));
        Assert.True(e.Error == TdxDeviceError.QuoteServiceFailure, name);
    }

    [Fact]
    public async Task GetQuote_RoundTripsThroughAQgs()
    {
        var reportData = Enumerable.Repeat((byte)7, 64).ToArray();
        var qgs = new FakeQgsStream(request =>
        {
            var tdReport = request.AsSpan(24, 1024).ToArray();
            return Response(FakeConfigfsTsm.FakeQuote(tdReport.AsSpan(128, 64).ToArray()));
        });
        var provider = new QgsQuoteProvider(FakeReport, 4050, _ => ValueTask.FromResult<Stream>(qgs));

        var quote = await provider.GetQuoteAsync(reportData, TestContext.Current.CancellationToken);

        Assert.Equal(reportData, quote.AsSpan(568, 64).ToArray());
        Assert.Equal((uint)(16 + 8 + 1024), BinaryPrimitives.ReadUInt32BigEndian(qgs.Received.AsSpan(0, 4)));
    }

    [Fact]
    public async Task Rejects_QuoteOverOtherReportData()
    {
        var qgs = new FakeQgsStream(_ => Response(FakeConfigfsTsm.FakeQuote(new byte[64])));
        var provider = new QgsQuoteProvider(FakeReport, 4050, _ => ValueTask.FromResult<Stream>(qgs));

        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => provider.GetQuoteAsync(Enumerable.Repeat((byte)1, 64).ToArray(), TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(TdxDeviceError.InvalidQuote, e.Error);
    }

    [Fact]
    public async Task Rejects_OversizedAnnouncedResponse()
    {
        var qgs = new FakeQgsStream(_ => new byte[QgsQuoteProvider.MaxResponseBytes + 1]);
        var provider = new QgsQuoteProvider(FakeReport, 4050, _ => ValueTask.FromResult<Stream>(qgs));

        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => provider.GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(TdxDeviceError.QuoteServiceFailure, e.Error);
    }

    [Fact]
    public async Task Rejects_TruncatedResponse()
    {
        var qgs = new FakeQgsStream(_ => Response([1, 2, 3]), truncateBy: 2);
        var provider = new QgsQuoteProvider(FakeReport, 4050, _ => ValueTask.FromResult<Stream>(qgs));

        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => provider.GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(TdxDeviceError.QuoteServiceFailure, e.Error);
    }

    [Theory]
    [InlineData("port=4050\n", 4050u)]
    [InlineData("# comment\n  port = 4051  \n", 4051u)]
    [InlineData("#port=1\n", null)]
    [InlineData("port=0\n", null)]
    [InlineData("port=x\n", null)]
    [InlineData("", null)]
    public void ReadPort_ParsesTdxAttestConf(string content, uint? expected)
    {
        var path = Path.Combine(_dir, "tdx-attest.conf");
        File.WriteAllText(path, content);
        Assert.Equal(expected, QgsQuoteProvider.ReadPort(path));
        Assert.Null(QgsQuoteProvider.ReadPort(Path.Combine(_dir, "absent.conf")));
    }

    [Fact]
    public void VsockAddress_IsSockaddrVm()
    {
        var address = VsockInterop.SockaddrVm(2, 4050);

        Assert.Equal("2800" + "0000" + "d20f0000" + "02000000" + "00000000", Convert.ToHexStringLower(address));
    }

    private static TdReport FakeReport(byte[] reportData)
    {
        var raw = new byte[1024];
        reportData.CopyTo(raw, 128);
        return TdReport.FromBytes(raw);
    }

    private static byte[] Response(byte[] quote, byte[]? selectedId = null, uint type = 1, uint error = 0)
    {
        selectedId ??= [];
        var message = new byte[24 + selectedId.Length + quote.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(message, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(4), type);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), (uint)message.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(12), error);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(16), (uint)selectedId.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(20), (uint)quote.Length);
        selectedId.CopyTo(message, 24);
        quote.CopyTo(message, 24 + selectedId.Length);
        return message;
    }

    private static byte[] Patch(byte[] message, int offset, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(offset), value);
        return message;
    }

    /// <summary>Plays the QGS: collects the length-prefixed request, then serves the length-prefixed answer.</summary>
    private sealed class FakeQgsStream(Func<byte[], byte[]> answer, int truncateBy = 0) : Stream
    {
        private readonly MemoryStream _received = new();
        private MemoryStream? _reply;

        public byte[] Received => _received.ToArray();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_reply is null)
            {
                var all = _received.ToArray();
                var length = (int)BinaryPrimitives.ReadUInt32BigEndian(all);
                Assert.Equal(length, all.Length - 4);
                var response = answer(all[4..]);
                var framed = new byte[4 + response.Length];
                BinaryPrimitives.WriteUInt32BigEndian(framed, (uint)response.Length);
                response.CopyTo(framed, 4);
                _reply = new MemoryStream(framed[..^truncateBy]);
            }

            return _reply.Read(buffer, offset, count);
        }

        public override void Write(byte[] buffer, int offset, int count) => _received.Write(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _received.Dispose();
                _reply?.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
