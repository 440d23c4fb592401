using System.Buffers;
using System.Buffers.Binary;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Hpke;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// EHBP SPEC §4.3 framing: a body is <c>(LEN(4, big-endian uint32) ‖ CIPHERTEXT)*</c>; LEN counts ciphertext bytes
/// only; <c>LEN = 0</c> is skipped; the body ends with the HTTP body (no sentinel). Every declared length is bounded
/// before anything is allocated.
/// </summary>
public static class EhbpFraming
{
    /// <summary>Opens every frame of a whole body; the plaintext may not exceed <paramref name="maxPlaintextBytes"/>.</summary>
    public static byte[] OpenAll(ReadOnlySpan<byte> wire, EhbpChunkCipher cipher, int maxPlaintextBytes)
    {
        ArgumentNullException.ThrowIfNull(cipher);
        var output = new ArrayBufferWriter<byte>(Math.Min(wire.Length, maxPlaintextBytes) + 1);
        while (!wire.IsEmpty)
        {
            if (wire.Length < EhbpProtocol.FrameHeaderLength)
            {
                throw new AttestationException(ErrorCode.EhbpFrameTruncated, "the body ends inside a frame header");
            }

            var length = BinaryPrimitives.ReadUInt32BigEndian(wire);
            wire = wire[EhbpProtocol.FrameHeaderLength..];
            if (length == 0)
            {
                continue;
            }

            if (length > (uint)wire.Length)
            {
                throw new AttestationException(ErrorCode.EhbpFrameTruncated, $"a frame declares {length} bytes but {wire.Length} remain");
            }

            if (output.WrittenCount + (long)length - HpkeSuite.TagLength > maxPlaintextBytes)
            {
                throw new AttestationException(ErrorCode.EhbpBodyTooLarge, $"the decrypted body would exceed {maxPlaintextBytes} bytes");
            }

            var plaintext = cipher.OpenFrame(wire[..(int)length]);
            output.Write(plaintext);
            wire = wire[(int)length..];
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Reads the next non-empty frame's ciphertext from <paramref name="source"/>, or null at a clean end of body.
    /// <paramref name="onWire"/> sees every wire byte read (length prefixes included).
    /// </summary>
    public static async ValueTask<byte[]?> ReadFrameAsync(Stream source, int maxFrameBytes, Action<ReadOnlyMemory<byte>>? onWire, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var header = new byte[EhbpProtocol.FrameHeaderLength];
        while (true)
        {
            var got = await ReadAtLeastAsync(source, header, cancellationToken).ConfigureAwait(false);
            if (got == 0)
            {
                return null;
            }

            onWire?.Invoke(header.AsMemory(0, got));
            if (got < header.Length)
            {
                throw new AttestationException(ErrorCode.EhbpFrameTruncated, "the body ends inside a frame header");
            }

            var length = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (length == 0)
            {
                continue;
            }

            if (length > (uint)maxFrameBytes)
            {
                throw new AttestationException(ErrorCode.EhbpFrameTooLarge, $"a frame declares {length} bytes; the limit is {maxFrameBytes}");
            }

            var frame = new byte[length];
            got = await ReadAtLeastAsync(source, frame, cancellationToken).ConfigureAwait(false);
            onWire?.Invoke(frame.AsMemory(0, got));
            if (got < frame.Length)
            {
                throw new AttestationException(ErrorCode.EhbpFrameTruncated, $"the body ends {frame.Length - got} bytes into a {length}-byte frame");
            }

            return frame;
        }
    }

    private static async ValueTask<int> ReadAtLeastAsync(Stream source, byte[] buffer, CancellationToken cancellationToken) =>
        await source.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
}

/// <summary>
/// A read-only stream of the plaintext of an EHBP body read from <c>inner</c>: one frame is read, authenticated and
/// only then released. Any failure throws an <see cref="AttestationException"/> (and every later read throws it again);
/// no byte of a frame that did not authenticate is returned.
/// </summary>
public sealed class EhbpDecryptingStream(Stream inner, EhbpChunkCipher cipher, int maxFrameBytes, Action<ReadOnlyMemory<byte>>? onWire = null) : Stream
{
    private byte[] _plain = [];
    private int _offset;
    private bool _ended;
    private AttestationException? _failure;

    /// <summary>True once the body ended cleanly at a frame boundary.</summary>
    public bool Completed => _ended && _failure is null;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_failure is not null)
        {
            throw _failure;
        }

        while (_offset == _plain.Length)
        {
            if (_ended || buffer.IsEmpty)
            {
                return 0;
            }

            try
            {
                var frame = await EhbpFraming.ReadFrameAsync(inner, maxFrameBytes, onWire, cancellationToken).ConfigureAwait(false);
                if (frame is null)
                {
                    _ended = true;
                    return 0;
                }

                _plain = cipher.OpenFrame(frame);
                _offset = 0;
            }
            catch (AttestationException e)
            {
                _failure = e;
                throw;
            }
        }

        var n = Math.Min(buffer.Length, _plain.Length - _offset);
        _plain.AsMemory(_offset, n).CopyTo(buffer);
        _offset += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            cipher.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// A write-only stream that seals what is written into EHBP frames on <c>inner</c>: each write becomes one frame (or
/// several of at most <c>maxChunkBytes</c> plaintext bytes) and is written through at once, so a stream is
/// encrypted chunk by chunk and never buffered whole. <paramref name="onWire"/> sees every byte written to inner.
/// </summary>
public sealed class EhbpEncryptingStream(Stream inner, EhbpChunkCipher cipher, int maxChunkBytes = 64 * 1024, Action<ReadOnlySpan<byte>>? onWire = null, bool leaveOpen = false) : Stream
{
    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            var chunk = buffer[..Math.Min(maxChunkBytes, buffer.Length)];
            var frame = ArrayPool<byte>.Shared.Rent(EhbpProtocol.FrameHeaderLength + chunk.Length + HpkeSuite.TagLength);
            try
            {
                var length = EhbpProtocol.FrameHeaderLength + chunk.Length + HpkeSuite.TagLength;
                cipher.SealFrame(chunk.Span, frame.AsSpan(0, length));
                onWire?.Invoke(frame.AsSpan(0, length));
                await inner.WriteAsync(frame.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(frame);
            }

            buffer = buffer[chunk.Length..];
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            cipher.Dispose();
            if (!leaveOpen)
            {
                inner.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}
