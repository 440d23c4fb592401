using System.Buffers.Binary;
using System.Text;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Kms.Rpc;

/// <summary>What the requested certificate should say (dstack's <c>CertConfig</c>).</summary>
public sealed record CertConfig(string? OrgName, string Subject, IReadOnlyList<string> SubjectAltNames, bool UsageServerAuth, bool UsageClientAuth, bool ExtQuote);

/// <summary>
/// dstack's <c>SignCert</c> CSR (dstack.md §9.5), SCALE-encoded (parity-scale-codec): <c>confirm</c> (String, must be
/// <c>"please sign cert:"</c>), <c>pubkey</c> (SPKI DER), <c>config</c>, <c>quote</c> (report_data =
/// SHA-512("ratls-cert:" ‖ pubkey)), <c>event_log</c> (compact JSON bytes). Decoding is bounded by the input: every
/// length is checked against what remains before anything is allocated.
/// </summary>
public sealed record CertSigningRequest(string Confirm, byte[] PublicKey, CertConfig Config, byte[] Quote, byte[] EventLog)
{
    public const string ConfirmWord = "please sign cert:";

    /// <summary>Largest number of subject alternative names accepted.</summary>
    public const int MaxAltNames = 64;

    public byte[] Encode()
    {
        var output = new List<byte>(256 + PublicKey.Length + Quote.Length + EventLog.Length);
        WriteBytes(output, Encoding.UTF8.GetBytes(Confirm));
        WriteBytes(output, PublicKey);
        if (Config.OrgName is { } org)
        {
            output.Add(1);
            WriteBytes(output, Encoding.UTF8.GetBytes(org));
        }
        else
        {
            output.Add(0);
        }

        WriteBytes(output, Encoding.UTF8.GetBytes(Config.Subject));
        WriteCompact(output, (ulong)Config.SubjectAltNames.Count);
        foreach (var name in Config.SubjectAltNames)
        {
            WriteBytes(output, Encoding.UTF8.GetBytes(name));
        }

        output.Add(Config.UsageServerAuth ? (byte)1 : (byte)0);
        output.Add(Config.UsageClientAuth ? (byte)1 : (byte)0);
        output.Add(Config.ExtQuote ? (byte)1 : (byte)0);
        WriteBytes(output, Quote);
        WriteBytes(output, EventLog);
        return [.. output];
    }

    /// <exception cref="AttestationException"><see cref="ErrorCode.KmsRequestInvalid"/> for anything malformed.</exception>
    public static CertSigningRequest Decode(ReadOnlySpan<byte> scale)
    {
        var reader = new Reader(scale);
        var confirm = reader.Text();
        var publicKey = reader.Bytes();
        var org = reader.Byte() switch
        {
            0 => null,
            1 => reader.Text(),
            _ => throw Malformed("org_name is not an Option"),
        };
        var subject = reader.Text();
        var count = reader.Compact();
        if (count > MaxAltNames)
        {
            throw Malformed($"more than {MaxAltNames} subject alternative names");
        }

        var names = new List<string>((int)count);
        for (var i = 0UL; i < count; i++)
        {
            names.Add(reader.Text());
        }

        var config = new CertConfig(org, subject, names, reader.Bool(), reader.Bool(), reader.Bool());
        var request = new CertSigningRequest(confirm, publicKey, config, reader.Bytes(), reader.Bytes());
        if (!reader.AtEnd)
        {
            throw Malformed("trailing bytes after the CSR");
        }

        return request;
    }

    private static void WriteBytes(List<byte> output, byte[] bytes)
    {
        WriteCompact(output, (ulong)bytes.Length);
        output.AddRange(bytes);
    }

    private static void WriteCompact(List<byte> output, ulong value)
    {
        Span<byte> buffer = stackalloc byte[8];
        if (value < 1UL << 6)
        {
            output.Add((byte)(value << 2));
        }
        else if (value < 1UL << 14)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(buffer, (ushort)((value << 2) | 1));
            output.AddRange(buffer[..2]);
        }
        else if (value < 1UL << 30)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)((value << 2) | 2));
            output.AddRange(buffer[..4]);
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
            var length = 8;
            while (length > 4 && buffer[length - 1] == 0)
            {
                length--;
            }

            output.Add((byte)(((length - 4) << 2) | 3));
            output.AddRange(buffer[..length]);
        }
    }

    private static AttestationException Malformed(string message) => new(ErrorCode.KmsRequestInvalid, $"malformed SignCert CSR: {message}");

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _offset;

        public readonly bool AtEnd => _offset == _data.Length;

        public byte Byte()
        {
            if (_offset >= _data.Length)
            {
                throw Malformed("truncated");
            }

            return _data[_offset++];
        }

        public bool Bool() => Byte() switch
        {
            0 => false,
            1 => true,
            _ => throw Malformed("a bool is not 0 or 1"),
        };

        public ulong Compact()
        {
            var first = Byte();
            switch (first & 3)
            {
                case 0:
                    return (ulong)(first >> 2);
                case 1:
                    return (ulong)(BinaryPrimitives.ReadUInt16LittleEndian([first, Byte()]) >> 2);
                case 2:
                    return BinaryPrimitives.ReadUInt32LittleEndian([first, Byte(), Byte(), Byte()]) >> 2;
                default:
                    var length = (first >> 2) + 4;
                    if (length > 8)
                    {
                        throw Malformed("a length above 2^64");
                    }

                    Span<byte> buffer = stackalloc byte[8];
                    buffer.Clear();
                    for (var i = 0; i < length; i++)
                    {
                        buffer[i] = Byte();
                    }

                    return BinaryPrimitives.ReadUInt64LittleEndian(buffer);
            }
        }

        public byte[] Bytes()
        {
            var length = Compact();
            if (length > (ulong)(_data.Length - _offset))
            {
                throw Malformed($"a length of {length} bytes exceeds the {_data.Length - _offset} that remain");
            }

            var bytes = _data.Slice(_offset, (int)length).ToArray();
            _offset += (int)length;
            return bytes;
        }

        public string Text()
        {
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Bytes());
            }
            catch (DecoderFallbackException)
            {
                throw Malformed("a string is not UTF-8");
            }
        }
    }
}
