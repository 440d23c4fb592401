using System.Buffers.Binary;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>
/// Writes a GET_MEASUREMENTS request ‖ MEASUREMENTS response in the layout NVIDIA GPUs produce (SPDM 1.1, DMTF digest
/// blocks), signing <c>request ‖ response-without-signature</c> with the given function. For the simulator and tests.
/// </summary>
public static class SpdmReportWriter
{
    /// <param name="nonce">The requester's 32-byte nonce.</param>
    /// <param name="digests">Measurement values in SPDM index order (index = position + 1).</param>
    /// <param name="responseNonce">The responder's 32-byte nonce.</param>
    /// <param name="opaque">Opaque data (see <see cref="GpuOpaqueData.Encode"/>).</param>
    /// <param name="sign">Returns the 96-byte raw r ‖ s ECDSA P-384/SHA-384 signature of its input.</param>
    public static byte[] Write(ReadOnlySpan<byte> nonce, IReadOnlyList<byte[]> digests, ReadOnlySpan<byte> responseNonce, ReadOnlySpan<byte> opaque, Func<byte[], byte[]> sign)
    {
        ArgumentNullException.ThrowIfNull(digests);
        ArgumentNullException.ThrowIfNull(sign);
        if (nonce.Length != SpdmLayout.NonceSize || responseNonce.Length != SpdmLayout.NonceSize)
        {
            throw new ArgumentException("nonces must be 32 bytes");
        }

        if (digests.Count is 0 or > 255)
        {
            throw new ArgumentOutOfRangeException(nameof(digests), "1 to 255 measurement blocks");
        }

        var recordLength = digests.Sum(d => 4 + 3 + d.Length);
        var signedLength = SpdmLayout.RequestSize + SpdmLayout.ResponseHeaderSize + recordLength + SpdmLayout.NonceSize + 2 + opaque.Length;
        var buffer = new byte[signedLength];
        var s = buffer.AsSpan();
        s[0] = SpdmLayout.Version11;
        s[1] = SpdmLayout.GetMeasurements;
        s[2] = 0x01;
        s[3] = 0xFF;
        nonce.CopyTo(s[4..]);
        s[36] = 0x00;
        var p = SpdmLayout.RequestSize;
        s[p] = SpdmLayout.Version11;
        s[p + 1] = SpdmLayout.Measurements;
        s[p + 4] = (byte)digests.Count;
        s[p + 5] = (byte)recordLength;
        s[p + 6] = (byte)(recordLength >> 8);
        s[p + 7] = (byte)(recordLength >> 16);
        p += SpdmLayout.ResponseHeaderSize;
        for (var i = 0; i < digests.Count; i++)
        {
            var d = digests[i];
            s[p] = (byte)(i + 1);
            s[p + 1] = 0x01;
            BinaryPrimitives.WriteUInt16LittleEndian(s[(p + 2)..], (ushort)(3 + d.Length));
            s[p + 4] = 0x01;
            BinaryPrimitives.WriteUInt16LittleEndian(s[(p + 5)..], (ushort)d.Length);
            d.CopyTo(s[(p + 7)..]);
            p += 7 + d.Length;
        }

        responseNonce.CopyTo(s[p..]);
        p += SpdmLayout.NonceSize;
        BinaryPrimitives.WriteUInt16LittleEndian(s[p..], checked((ushort)opaque.Length));
        p += 2;
        opaque.CopyTo(s[p..]);
        var signature = sign(buffer);
        if (signature.Length != SpdmLayout.SignatureSize)
        {
            throw new InvalidOperationException("the signer must return 96 bytes");
        }

        return [.. buffer, .. signature];
    }
}
