using System.Security.Cryptography;
using System.Text;
using NBitcoin.Secp256k1;
using PrivateMl.E2ee.Aci;
using PrivateMl.E2ee.Signing;

namespace PrivateMl.Gateway.Signing;

/// <summary>
/// secp256k1 key with Ethereum conventions: the address is the last 20 bytes of Keccak-256 of the uncompressed public
/// key (shown EIP-55 checksummed, as the seed proxy's <c>account.address</c>), and messages are signed with EIP-191
/// <c>personal_sign</c>: Keccak-256 of <c>"\x19Ethereum Signed Message:\n" + byte length + text</c>, signature
/// <c>0x ‖ r ‖ s ‖ v</c> with v = recovery id + 27 (what <c>ethers.verifyMessage</c> recovers). Signing runs on the
/// secp256k1 backend the ACI E2EE keys use (<see cref="Secp256k1Backend.Default"/>): native libsecp256k1 (Secp256k1.Net),
/// about 17× faster, or — when the library is absent, fails its self-check, or <c>PRIVATEML_SECP256K1=managed</c> — the
/// managed NBitcoin port, which gives the same bytes (RFC 6979 nonces, low s) and stays for key checks and recovery.
/// </summary>
internal sealed class EthereumSigner : IDisposable
{
    private readonly ECPrivKey _key;
    private readonly byte[] _secret;
    private readonly Secp256k1Backend _backend;

    public EthereumSigner(ReadOnlySpan<byte> privateKey)
        : this(privateKey, Secp256k1Backend.Default)
    {
    }

    /// <summary>A signer on <paramref name="backend"/> (tests compare the two).</summary>
    internal EthereumSigner(ReadOnlySpan<byte> privateKey, Secp256k1Backend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _backend = backend;
        if (privateKey.Length != 32 || !ECPrivKey.TryCreate(privateKey, out var key) || key is null)
        {
            throw new CryptographicException("not a valid secp256k1 private key");
        }

        _key = key;
        _secret = privateKey.ToArray();
        AddressBytes = Eip191.AddressOf(key.CreatePubKey().ToBytes(compressed: false));
        Address = ChecksumAddress(AddressBytes);
    }

    /// <summary>The 20 address bytes (what the attestation report_data carries, padded to 32).</summary>
    public byte[] AddressBytes { get; }

    /// <summary>EIP-55 checksummed <c>0x</c> address.</summary>
    public string Address { get; }

    /// <summary>The secp256k1 implementation that signs: <c>native</c> or <c>managed</c>.</summary>
    public string Implementation => _backend.Name;

    public static EthereumSigner CreateRandom(RandomNumberGenerator random)
    {
        var bytes = new byte[32];
        try
        {
            while (true)
            {
                random.GetBytes(bytes);
                if (ECPrivKey.TryCreate(bytes, out var probe))
                {
                    probe!.Dispose();
                    return new EthereumSigner(bytes);
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>EIP-191 personal_sign of <paramref name="text"/> (UTF-8), as <c>0x</c> + 130 lower-case hex.</summary>
    public string PersonalSign(string text)
    {
        var digest = Eip191.PersonalMessageDigest(Encoding.UTF8.GetBytes(text));
        Span<byte> output = stackalloc byte[Secp256k1Backend.RecoverableSignatureBytes];
        if (!_backend.TrySignRecoverable(_secret, digest, output))
        {
            throw new CryptographicException($"secp256k1 signing failed ({_backend.Name})");
        }

        output[64] += 27;
        return "0x" + Convert.ToHexStringLower(output);
    }

    /// <summary>The address that signed <paramref name="text"/> with <paramref name="signatureHex"/>, or null when malformed.</summary>
    public static string? RecoverAddress(string text, string signatureHex)
    {
        var hex = signatureHex.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? signatureHex[2..] : signatureHex;
        if (hex.Length != 130)
        {
            return null;
        }

        byte[] bytes;
        try
        {
            bytes = Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }

        return Eip191.RecoverAddress(Encoding.UTF8.GetBytes(text), bytes) is { } address ? ChecksumAddress(address) : null;
    }

    /// <summary>EIP-55 mixed-case checksum encoding of a 20-byte address.</summary>
    public static string ChecksumAddress(ReadOnlySpan<byte> address)
    {
        var lower = Convert.ToHexStringLower(address);
        var hash = Eip191.Keccak256(Encoding.ASCII.GetBytes(lower));
        var chars = new char[42];
        chars[0] = '0';
        chars[1] = 'x';
        for (var i = 0; i < lower.Length; i++)
        {
            var nibble = (hash[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 0xF;
            chars[i + 2] = char.IsAsciiLetter(lower[i]) && nibble >= 8 ? char.ToUpperInvariant(lower[i]) : lower[i];
        }

        return new string(chars);
    }

    public void Dispose()
    {
        _key.Dispose();
        CryptographicOperations.ZeroMemory(_secret);
    }

    public override string ToString() => $"{nameof(EthereumSigner)}({Address})";
}
