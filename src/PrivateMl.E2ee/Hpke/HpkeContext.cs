using System.Buffers.Binary;
using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.E2ee.Hpke;

/// <summary>Which end of an HPKE context this is: a sender only seals, a recipient only opens (RFC 9180 §5.2).</summary>
public enum HpkeRole
{
    Sender,
    Recipient,
}

/// <summary>
/// An HPKE encryption context (RFC 9180 §5.2): AEAD key, base nonce, exporter secret and the message sequence
/// number. Message <c>seq</c> uses the nonce <c>base_nonce XOR I2OSP(seq, 12)</c>; the sequence advances only after a
/// successful seal or open. Not thread-safe: one context per message stream.
/// </summary>
public sealed class HpkeContext : IDisposable
{
    private readonly byte[] _key;
    private readonly byte[] _baseNonce;
    private readonly byte[] _exporterSecret;
    private readonly byte[] _suiteId;
    private readonly AesGcm? _aes;
    private readonly ChaCha20Poly1305? _chacha;
    private bool _disposed;

    internal HpkeContext(HpkeSuite suite, HpkeRole role, byte[] key, byte[] baseNonce, byte[] exporterSecret, byte[] keyScheduleContext, byte[] secret)
    {
        Suite = suite;
        Role = role;
        _key = key;
        _baseNonce = baseNonce;
        _exporterSecret = exporterSecret;
        _suiteId = suite.SuiteId();
        KeyScheduleContext = keyScheduleContext;
        Secret = secret;
        if (suite.Aead == HpkeAeadId.ChaCha20Poly1305)
        {
            _chacha = new ChaCha20Poly1305(key);
        }
        else
        {
            _aes = new AesGcm(key, HpkeSuite.TagLength);
        }
    }

    public HpkeSuite Suite { get; }

    public HpkeRole Role { get; }

    /// <summary>The sequence number of the next message.</summary>
    public ulong Sequence { get; private set; }

    internal byte[] Key => _key;

    internal byte[] BaseNonce => _baseNonce;

    internal byte[] ExporterSecret => _exporterSecret;

    internal byte[] KeyScheduleContext { get; }

    internal byte[] Secret { get; }

    /// <summary>Seal(aad, pt) → ciphertext ‖ tag, then advance the sequence (sender contexts only).</summary>
    public byte[] Seal(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        var output = new byte[plaintext.Length + HpkeSuite.TagLength];
        Seal(aad, plaintext, output);
        return output;
    }

    /// <summary>Seal into <paramref name="destination"/> (exactly plaintext length + 16 bytes).</summary>
    public void Seal(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Role != HpkeRole.Sender)
        {
            throw new InvalidOperationException("a recipient context does not seal");
        }

        if (destination.Length != plaintext.Length + HpkeSuite.TagLength)
        {
            throw new ArgumentException("the destination must be the plaintext length plus the 16-byte tag", nameof(destination));
        }

        Span<byte> nonce = stackalloc byte[HpkeSuite.NonceLength];
        ComputeNonce(nonce);
        var ciphertext = destination[..plaintext.Length];
        var tag = destination[plaintext.Length..];
        if (_aes is not null)
        {
            _aes.Encrypt(nonce, plaintext, ciphertext, tag, aad);
        }
        else
        {
            _chacha!.Encrypt(nonce, plaintext, ciphertext, tag, aad);
        }

        Sequence++;
    }

    /// <summary>Open(aad, ct) → plaintext, then advance the sequence; failure (<see cref="ErrorCode.HpkeOpenFailed"/>) leaves the sequence unchanged.</summary>
    public byte[] Open(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext)
    {
        if (ciphertext.Length < HpkeSuite.TagLength)
        {
            throw new AttestationException(ErrorCode.HpkeOpenFailed, "the ciphertext is shorter than the AEAD tag");
        }

        var output = new byte[ciphertext.Length - HpkeSuite.TagLength];
        Open(aad, ciphertext, output);
        return output;
    }

    /// <summary>Open into <paramref name="destination"/> (exactly ciphertext length − 16 bytes).</summary>
    public void Open(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Role != HpkeRole.Recipient)
        {
            throw new InvalidOperationException("a sender context does not open");
        }

        if (ciphertext.Length < HpkeSuite.TagLength || destination.Length != ciphertext.Length - HpkeSuite.TagLength)
        {
            throw new AttestationException(ErrorCode.HpkeOpenFailed, "the ciphertext is shorter than the AEAD tag");
        }

        Span<byte> nonce = stackalloc byte[HpkeSuite.NonceLength];
        ComputeNonce(nonce);
        var body = ciphertext[..^HpkeSuite.TagLength];
        var tag = ciphertext[^HpkeSuite.TagLength..];
        try
        {
            if (_aes is not null)
            {
                _aes.Decrypt(nonce, body, tag, destination, aad);
            }
            else
            {
                _chacha!.Decrypt(nonce, body, tag, destination, aad);
            }
        }
        catch (AuthenticationTagMismatchException e)
        {
            CryptographicOperations.ZeroMemory(destination);
            throw new AttestationException(ErrorCode.HpkeOpenFailed, $"HPKE message {Sequence} did not authenticate", e);
        }

        Sequence++;
    }

    /// <summary>Export(exporter_context, L) = LabeledExpand(exporter_secret, "sec", exporter_context, L).</summary>
    public byte[] Export(ReadOnlySpan<byte> exporterContext, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return HpkeKdf.LabeledExpand(_suiteId, _exporterSecret, "sec"u8, exporterContext, length);
    }

    /// <summary>Moves the sequence (tests use it to reach the RFC's seq 255/256 vectors without sealing every message).</summary>
    internal void SetSequenceForTest(ulong sequence) => Sequence = sequence;

    private void ComputeNonce(Span<byte> nonce)
    {
        // RFC 9180 §5.2: seq ≥ 2^(8·Nn) − 1 must fail; a ulong counter reaches its own limit first.
        if (Sequence == ulong.MaxValue)
        {
            throw new AttestationException(ErrorCode.HpkeSequenceOverflow, "the HPKE message sequence number is exhausted");
        }

        _baseNonce.CopyTo(nonce);
        Span<byte> seq = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(seq, Sequence);
        for (var i = 0; i < 8; i++)
        {
            nonce[HpkeSuite.NonceLength - 8 + i] ^= seq[i];
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _aes?.Dispose();
        _chacha?.Dispose();
        CryptographicOperations.ZeroMemory(_key);
        CryptographicOperations.ZeroMemory(_exporterSecret);
        CryptographicOperations.ZeroMemory(Secret);
    }
}
