using System.Buffers.Binary;
using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Hpke;

namespace PrivateMl.E2ee.Ehbp;

/// <summary>
/// AES-256-GCM over one body in one direction, empty AAD, chunk <c>i</c> under <c>nonce_base XOR I2OSP(i, 12)</c>. For
/// requests key and base are the HPKE context's (so this equals <c>ctx.Seal("", chunk)</c> at sequence i); for
/// responses they come from <see cref="EhbpResponseKeys"/>. The counter advances only after a frame authenticates.
/// A frame that fails is tried against nearby counters to name what happened (an earlier counter: a duplicated or
/// replayed chunk; a later one: a dropped or reordered chunk; none: tampering); the plaintext is never released.
/// </summary>
public sealed class EhbpChunkCipher : IDisposable
{
    /// <summary>How far from the expected counter a failed frame is tried, only to name the failure.</summary>
    internal const int DiagnosticWindow = 64;

    private readonly AesGcm _aes;
    private readonly byte[] _nonceBase;
    private bool _disposed;

    internal EhbpChunkCipher(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonceBase)
    {
        if (key.Length != 32 || nonceBase.Length != HpkeSuite.NonceLength)
        {
            throw new ArgumentException("EHBP chunks use a 32-byte AES key and a 12-byte nonce base");
        }

        _aes = new AesGcm(key, HpkeSuite.TagLength);
        _nonceBase = nonceBase.ToArray();
    }

    /// <summary>The counter of the next chunk.</summary>
    public ulong Sequence { get; private set; }

    /// <summary>Seals one chunk into a whole frame: <c>LEN(4, big-endian) ‖ ciphertext ‖ tag</c>.</summary>
    public byte[] SealFrame(ReadOnlySpan<byte> plaintext)
    {
        var frame = new byte[EhbpProtocol.FrameHeaderLength + plaintext.Length + HpkeSuite.TagLength];
        SealFrame(plaintext, frame);
        return frame;
    }

    /// <summary>Seals one chunk into <paramref name="frame"/> (exactly 4 + plaintext + 16 bytes).</summary>
    public void SealFrame(ReadOnlySpan<byte> plaintext, Span<byte> frame)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (plaintext.IsEmpty)
        {
            throw new ArgumentException("an EHBP chunk carries at least one byte", nameof(plaintext));
        }

        if (frame.Length != EhbpProtocol.FrameHeaderLength + plaintext.Length + HpkeSuite.TagLength)
        {
            throw new ArgumentException("the frame buffer must be 4 + plaintext + 16 bytes", nameof(frame));
        }

        Span<byte> nonce = stackalloc byte[HpkeSuite.NonceLength];
        Nonce(Sequence, nonce);
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(plaintext.Length + HpkeSuite.TagLength));
        var body = frame[EhbpProtocol.FrameHeaderLength..];
        _aes.Encrypt(nonce, plaintext, body[..plaintext.Length], body[plaintext.Length..], []);
        Sequence++;
    }

    /// <summary>Opens the ciphertext of one non-empty frame (without its length prefix) and advances the counter.</summary>
    public byte[] OpenFrame(ReadOnlySpan<byte> ciphertext)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ciphertext.Length < HpkeSuite.TagLength)
        {
            throw new AttestationException(ErrorCode.EhbpChunkAuthenticationFailed, $"EHBP chunk {Sequence} is shorter than its tag");
        }

        var plaintext = new byte[ciphertext.Length - HpkeSuite.TagLength];
        if (TryOpen(Sequence, ciphertext, plaintext))
        {
            Sequence++;
            return plaintext;
        }

        CryptographicOperations.ZeroMemory(plaintext);
        throw Diagnose(ciphertext);
    }

    /// <summary>The AES-GCM nonce of chunk <paramref name="sequence"/>.</summary>
    internal void Nonce(ulong sequence, Span<byte> nonce)
    {
        if (sequence == ulong.MaxValue)
        {
            throw new AttestationException(ErrorCode.HpkeSequenceOverflow, "the EHBP chunk counter is exhausted");
        }

        _nonceBase.CopyTo(nonce);
        var tail = nonce[(HpkeSuite.NonceLength - 8)..];
        BinaryPrimitives.WriteUInt64BigEndian(tail, BinaryPrimitives.ReadUInt64BigEndian(tail) ^ sequence);
    }

    private bool TryOpen(ulong sequence, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        Span<byte> nonce = stackalloc byte[HpkeSuite.NonceLength];
        Nonce(sequence, nonce);
        try
        {
            _aes.Decrypt(nonce, ciphertext[..^HpkeSuite.TagLength], ciphertext[^HpkeSuite.TagLength..], plaintext, []);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    private AttestationException Diagnose(ReadOnlySpan<byte> ciphertext)
    {
        var scratch = new byte[ciphertext.Length - HpkeSuite.TagLength];
        try
        {
            var first = Sequence > DiagnosticWindow ? Sequence - DiagnosticWindow : 0;
            for (var s = first; s < Sequence; s++)
            {
                if (TryOpen(s, ciphertext, scratch))
                {
                    return new AttestationException(ErrorCode.EhbpChunkReplayed, $"EHBP chunk {Sequence} is a copy of chunk {s} (duplicated or replayed)");
                }
            }

            for (var s = Sequence + 1; s <= Sequence + DiagnosticWindow && s < ulong.MaxValue; s++)
            {
                if (TryOpen(s, ciphertext, scratch))
                {
                    return new AttestationException(ErrorCode.EhbpChunkOutOfOrder, $"EHBP chunk {Sequence} is missing: chunk {s} came in its place (dropped or reordered)");
                }
            }

            return new AttestationException(ErrorCode.EhbpChunkAuthenticationFailed, $"EHBP chunk {Sequence} did not authenticate (tampered, or another key)");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scratch);
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _aes.Dispose();
        }
    }
}
