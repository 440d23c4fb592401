using System.Buffers.Binary;
using System.Security.Cryptography;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Ehbp;
using PrivateMl.E2ee.Hpke;

namespace PrivateMl.E2ee.Tests.Ehbp;

/// <summary>
/// What an on-path party can do to an EHBP body, and the typed error each gets: every tampered, dropped, reordered,
/// duplicated or truncated chunk is caught at that chunk, and no plaintext of it is released.
/// </summary>
public sealed class EhbpAttackTests
{
    private static readonly byte[][] Chunks = [.. Enumerable.Range(0, 5).Select(i => System.Text.Encoding.UTF8.GetBytes($"data: {{\"chunk\":{i},\"secret\":\"s{i}\"}}\n\n"))];

    [Fact]
    public void Honest_response_stream_opens_chunk_by_chunk()
    {
        var (frames, opener) = Exchange();
        using (opener)
        {
            var plain = EhbpFraming.OpenAll(Concat(frames), opener, 1 << 20);
            Assert.Equal(Concat(Chunks), plain);
            Assert.Equal((ulong)Chunks.Length, opener.Sequence);
        }
    }

    [Fact]
    public void A_flipped_byte_anywhere_in_a_frame_is_caught_at_that_frame()
    {
        var (frames, _) = Exchange();
        for (var i = 4; i < frames[2].Length; i++)
        {
            var bad = frames.Select(f => (byte[])f.Clone()).ToArray();
            bad[2][i] ^= 0x80;
            var (_, opener) = Exchange();
            using (opener)
            {
                var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(Concat(bad), opener, 1 << 20));
                Assert.Equal(ErrorCode.EhbpChunkAuthenticationFailed, error.Code);
                Assert.Equal(2UL, opener.Sequence);
            }
        }
    }

    [Fact]
    public void A_dropped_chunk_is_out_of_order()
    {
        var (frames, opener) = Exchange();
        using (opener)
        {
            var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(Concat([frames[0], frames[2], frames[3]]), opener, 1 << 20));
            Assert.Equal(ErrorCode.EhbpChunkOutOfOrder, error.Code);
            Assert.Equal(1UL, opener.Sequence);
        }
    }

    [Fact]
    public void Swapped_chunks_are_out_of_order()
    {
        var (frames, opener) = Exchange();
        using (opener)
        {
            var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(Concat([frames[0], frames[2], frames[1], frames[3]]), opener, 1 << 20));
            Assert.Equal(ErrorCode.EhbpChunkOutOfOrder, error.Code);
        }
    }

    [Fact]
    public void A_duplicated_chunk_is_a_replay()
    {
        var (frames, opener) = Exchange();
        using (opener)
        {
            var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(Concat([frames[0], frames[1], frames[1], frames[2]]), opener, 1 << 20));
            Assert.Equal(ErrorCode.EhbpChunkReplayed, error.Code);
            Assert.Equal(2UL, opener.Sequence);
        }
    }

    [Fact]
    public void A_chunk_from_another_exchange_is_tampering()
    {
        var (frames, opener) = Exchange();
        var (other, _) = Exchange(nonceFirst: 65);
        using (opener)
        {
            var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(Concat([frames[0], other[1]]), opener, 1 << 20));
            Assert.Equal(ErrorCode.EhbpChunkAuthenticationFailed, error.Code);
        }
    }

    [Fact]
    public void Truncation_inside_a_frame_or_its_header_is_caught()
    {
        var (frames, _) = Exchange();
        var wire = Concat(frames);
        foreach (var cut in new[] { frames[0].Length + 2, frames[0].Length + 10, wire.Length - 1 })
        {
            var (_, opener) = Exchange();
            using (opener)
            {
                var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(wire.AsSpan(0, cut), opener, 1 << 20));
                Assert.Equal(ErrorCode.EhbpFrameTruncated, error.Code);
            }
        }
    }

    [Fact]
    public void Zero_length_frames_are_skipped_and_do_not_advance_the_counter()
    {
        var (frames, opener) = Exchange();
        using (opener)
        {
            var empty = new byte[4];
            Assert.Equal(Concat(Chunks), EhbpFraming.OpenAll(Concat([empty, frames[0], empty, empty, .. frames[1..]]), opener, 1 << 20));
        }
    }

    [Fact]
    public void A_frame_shorter_than_a_tag_is_an_authentication_failure()
    {
        var (_, opener) = Exchange();
        using (opener)
        {
            byte[] frame = [0, 0, 0, 3, 1, 2, 3];
            Assert.Equal(ErrorCode.EhbpChunkAuthenticationFailed, Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(frame, opener, 1 << 20)).Code);
        }
    }

    [Fact]
    public void Decrypted_size_is_bounded_before_opening()
    {
        var (frames, opener) = Exchange();
        using (opener)
        {
            var error = Assert.Throws<AttestationException>(() => EhbpFraming.OpenAll(Concat(frames), opener, Chunks[0].Length + 1));
            Assert.Equal(ErrorCode.EhbpBodyTooLarge, error.Code);
        }
    }

    [Fact]
    public async Task Streaming_reader_refuses_a_declared_length_over_its_limit_without_allocating_it()
    {
        var (_, opener) = Exchange();
        var header = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(header, uint.MaxValue);
        await using var stream = new EhbpDecryptingStream(new MemoryStream(header), opener, maxFrameBytes: 1024);
        var error = await Assert.ThrowsAsync<AttestationException>(async () => await stream.ReadExactlyAsync(new byte[16], TestContext.Current.CancellationToken));
        Assert.Equal(ErrorCode.EhbpFrameTooLarge, error.Code);
    }

    [Fact]
    public async Task Streaming_reader_releases_good_chunks_then_fails_at_the_bad_one_and_stays_failed()
    {
        var (frames, opener) = Exchange();
        var bad = frames.Select(f => (byte[])f.Clone()).ToArray();
        bad[3][^1] ^= 1;
        await using var stream = new EhbpDecryptingStream(new MemoryStream(Concat(bad)), opener, maxFrameBytes: 1024);
        var got = new MemoryStream();
        var buffer = new byte[7];
        var error = await Assert.ThrowsAsync<AttestationException>(async () =>
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, TestContext.Current.CancellationToken)) > 0)
            {
                got.Write(buffer, 0, n);
            }
        });

        Assert.Equal(ErrorCode.EhbpChunkAuthenticationFailed, error.Code);
        Assert.Equal(Concat(Chunks[..3]), got.ToArray());
        Assert.False(stream.Completed);
        await Assert.ThrowsAsync<AttestationException>(async () => await stream.ReadExactlyAsync(buffer, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Encrypting_stream_writes_one_frame_per_write_and_reports_every_wire_byte()
    {
        using var rng = RandomNumberGenerator.Create();
        var (skR, pkR) = X25519Kem.GenerateKeyPair(rng);
        using var client = EhbpClientExchange.Create(pkR, rng);
        using var server = EhbpServerExchange.Accept(client.EncapsulatedKeyHeader, skR);
        var (nonce, sealer) = server.CreateResponse(rng);
        var wire = new MemoryStream();
        var seen = new MemoryStream();
        await using (var enc = new EhbpEncryptingStream(wire, sealer, maxChunkBytes: 16, onWire: b => seen.Write(b), leaveOpen: true))
        {
            foreach (var c in Chunks)
            {
                await enc.WriteAsync(c, TestContext.Current.CancellationToken);
            }
        }

        Assert.Equal(wire.ToArray(), seen.ToArray());
        Assert.DoesNotContain("secret"u8.ToArray(), SplitWindows(wire.ToArray(), 6));
        using var opener = client.OpenResponse(nonce);
        await using var dec = new EhbpDecryptingStream(new MemoryStream(wire.ToArray()), opener, 1024);
        var plain = new MemoryStream();
        await dec.CopyToAsync(plain, TestContext.Current.CancellationToken);
        Assert.Equal(Concat(Chunks), plain.ToArray());
        Assert.True(dec.Completed);
        Assert.Equal((ulong)Chunks.Sum(c => (c.Length + 15) / 16), opener.Sequence);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("37FDA3567BDBD628E88668C3C8D7E97D1D1253B6D4EA6D44C150F741F1BF4431")]
    [InlineData("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf44")]
    [InlineData("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431 ")]
    [InlineData("zzfda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")]
    public void Malformed_encapsulated_key_headers_are_refused(string? header)
    {
        var error = Assert.Throws<AttestationException>(() => EhbpServerExchange.Accept(header, new byte[32]));
        Assert.Equal(ErrorCode.EhbpHeaderMalformed, error.Code);
    }

    [Fact]
    public void A_missing_or_malformed_response_nonce_is_refused()
    {
        using var rng = RandomNumberGenerator.Create();
        var (_, pkR) = X25519Kem.GenerateKeyPair(rng);
        using var client = EhbpClientExchange.Create(pkR, rng);

        Assert.Equal(ErrorCode.EhbpResponseNonceMissing, Assert.Throws<AttestationException>(() => client.OpenResponse(null)).Code);
        Assert.Equal(ErrorCode.EhbpHeaderMalformed, Assert.Throws<AttestationException>(() => client.OpenResponse("00")).Code);
    }

    [Fact]
    public void A_swapped_encapsulated_key_gives_the_server_nothing_it_can_open()
    {
        using var rng = RandomNumberGenerator.Create();
        var (skR, pkR) = X25519Kem.GenerateKeyPair(rng);
        using var client = EhbpClientExchange.Create(pkR, rng);
        var body = client.SealBody("{\"prompt\":\"x\"}"u8);
        using var attacker = EhbpClientExchange.Create(pkR, rng);
        using var server = EhbpServerExchange.Accept(attacker.EncapsulatedKeyHeader, skR);

        Assert.Equal(ErrorCode.EhbpChunkAuthenticationFailed, Assert.Throws<AttestationException>(() => server.OpenBody(body, 1024)).Code);
    }

    [Theory]
    [InlineData("", ErrorCode.EhbpKeyConfigMalformed)]
    [InlineData("0000", ErrorCode.EhbpKeyConfigMalformed)]
    [InlineData("000010", ErrorCode.EhbpKeyConfigUnsupported)]
    [InlineData("0000200707070707070707070707070707070707070707070707070707070707070707", ErrorCode.EhbpKeyConfigMalformed)]
    [InlineData("0000200707070707070707070707070707070707070707070707070707070707070707000000010002", ErrorCode.EhbpKeyConfigMalformed)]
    [InlineData("0000200707070707070707070707070707070707070707070707070707070707070707000800010002", ErrorCode.EhbpKeyConfigMalformed)]
    [InlineData("0000200707070707070707070707070707070707070707070707070707070707070707000400010001", ErrorCode.EhbpKeyConfigUnsupported)]
    public void Malformed_or_unsupported_key_configs_are_typed(string hex, ErrorCode expected)
    {
        Assert.Equal(expected, Assert.Throws<AttestationException>(() => EhbpKeyConfig.ParseFirst(Convert.FromHexString(hex))).Code);
    }

    private static (byte[][] Frames, EhbpChunkCipher Opener) Exchange(byte nonceFirst = 64)
    {
        var secret = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var enc = Enumerable.Range(32, 32).Select(i => (byte)i).ToArray();
        var nonce = Enumerable.Range(nonceFirst, 32).Select(i => (byte)i).ToArray();
        using var sealer = EhbpResponseKeys.Cipher(secret, enc, nonce);
        var frames = Chunks.Select(c => sealer.SealFrame(c)).ToArray();
        return (frames, EhbpResponseKeys.Cipher(secret, enc, nonce));
    }

    private static byte[] Concat(IEnumerable<byte[]> parts) => [.. parts.SelectMany(p => p)];

    private static IEnumerable<byte[]> SplitWindows(byte[] data, int width) =>
        Enumerable.Range(0, Math.Max(0, data.Length - width + 1)).Select(i => data.AsSpan(i, width).ToArray());
}
