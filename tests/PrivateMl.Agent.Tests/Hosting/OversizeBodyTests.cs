using PrivateMl.Agent.Hosting;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>The shared drain of a body over the limit (agent, gateway and KMS answer 413 after it).</summary>
public sealed class OversizeBodyTests
{
    private const int Limit = 1000;

    [Fact]
    public async Task Drain_ReadsTheRest_WhenTheBodyEndsWithinTheAllowance()
    {
        using var body = new MemoryStream(new byte[Limit + OversizeBody.DrainBytes]);
        body.Position = Limit + 1;

        var ended = await OversizeBody.DrainAsync(body, new byte[4096], Limit + 1, Limit, TestContext.Current.CancellationToken);

        Assert.True(ended);
        Assert.Equal(body.Length, body.Position);
    }

    [Fact]
    public async Task Drain_StopsOnceMoreThanTheAllowanceWasRead()
    {
        var scratch = new byte[4096];
        using var body = new MemoryStream(new byte[Limit + (3 * OversizeBody.DrainBytes)]);

        var ended = await OversizeBody.DrainAsync(body, scratch, 0, Limit, TestContext.Current.CancellationToken);

        Assert.False(ended);
        Assert.InRange(body.Position, Limit + OversizeBody.DrainBytes + 1, Limit + OversizeBody.DrainBytes + scratch.Length);
    }

    [Fact]
    public async Task Drain_CountsWhatTheCallerAlreadyRead()
    {
        using var body = new MemoryStream(new byte[OversizeBody.DrainBytes]);

        var ended = await OversizeBody.DrainAsync(body, Limit + (OversizeBody.DrainBytes / 2), Limit, TestContext.Current.CancellationToken);

        Assert.False(ended);
        Assert.InRange(body.Position, (OversizeBody.DrainBytes / 2) + 1, body.Length - 1);
    }

    [Fact]
    public async Task Drain_EndsQuietly_WhenKestrelsCapCutsTheBodyShort()
    {
        using var body = new CappedStream(100);

        var ended = await OversizeBody.DrainAsync(body, 0, Limit, TestContext.Current.CancellationToken);

        Assert.False(ended);
        Assert.True(body.Capped);
    }

    [Fact]
    public void KestrelCap_AndIsDrainable_AgreeOnTheLastDrainedLength()
    {
        var cap = OversizeBody.KestrelCap(Limit);

        Assert.True(OversizeBody.IsDrainable(cap - 1, Limit));
        Assert.False(OversizeBody.IsDrainable(cap, Limit));
    }

    /// <summary>Throws what Kestrel throws past MaxRequestBodySize once <c>cap</c> bytes were read.</summary>
    private sealed class CappedStream(int cap) : Stream
    {
        private int _read;

        public bool Capped { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _read; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_read >= cap)
            {
                Capped = true;
                throw new Microsoft.AspNetCore.Http.BadHttpRequestException("Request body too large.", 413);
            }

            var n = Math.Min(count, cap - _read);
            _read += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
