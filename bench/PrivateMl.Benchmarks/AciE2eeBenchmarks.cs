using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.Benchmarks;

/// <summary>
/// The per-field cost of ACI E2EE v2 for each suite and secp256k1 implementation: what the gateway pays per streamed
/// chunk (<see cref="SealField"/>: a fresh ephemeral key, ECDH, HKDF, AES-256-GCM) and what the client pays
/// (<see cref="OpenField"/>), with the key generation and the agreement alone. Run:
/// <c>dotnet run -c Release --project bench/PrivateMl.Benchmarks -- --filter '*AciE2eeBenchmarks*' --job short</c>
/// </summary>
[MemoryDiagnoser]
public class AciE2eeBenchmarks
{
    private static readonly byte[] Chunk = Encoding.UTF8.GetBytes(" token");
    private static readonly byte[] Aad = Encoding.UTF8.GetBytes("{\"algo\":\"secp256k1-aes-256-gcm-hkdf-sha256\",\"field\":\"choices.0.delta.content\",\"id\":\"chatcmpl-1\",\"model\":\"bench\",\"nonce\":\"00\",\"purpose\":\"aci.e2ee.response.v2\",\"ts\":1}");

    private AciPrivateKey? _recipient;
    private string _field = "";
    private Secp256k1Backend? _backend;
    private AciSuite _suite;

    /// <summary><c>x25519</c> (libsodium), <c>secp256k1-native</c> (libsecp256k1), <c>secp256k1-managed</c> (NBitcoin).</summary>
    [Params("x25519", "secp256k1-native", "secp256k1-managed")]
    public string Implementation { get; set; } = "x25519";

    [GlobalSetup]
    public void Setup()
    {
        _suite = Implementation == "x25519" ? AciSuite.X25519 : AciSuite.Secp256k1;
        _backend = Implementation switch
        {
            "secp256k1-native" => Secp256k1Backend.Native ?? throw new InvalidOperationException("libsecp256k1 is not loadable here"),
            "secp256k1-managed" => Secp256k1Backend.Managed,
            _ => null,
        };
        _recipient = AciPrivateKey.Create(_suite, null, _backend);
        _field = SealField();
    }

    [GlobalCleanup]
    public void Cleanup() => _recipient?.Dispose();

    [Benchmark]
    public AciPrivateKey CreateKey()
    {
        var key = AciPrivateKey.Create(_suite, null, _backend);
        key.Dispose();
        return key;
    }

    [Benchmark]
    public byte[]? Agree() => _recipient!.Agree(_recipient.PublicKey);

    /// <summary>The gateway's work per streamed chunk field.</summary>
    [Benchmark]
    public string SealField()
    {
        using var ephemeral = AciPrivateKey.Create(_suite, null, _backend);
        Span<byte> nonce = stackalloc byte[AciFieldCipher.NonceBytes];
        RandomNumberGenerator.Fill(nonce);
        return AciFieldCipher.Seal(ephemeral, nonce, _recipient!.PublicKey, Chunk, Aad);
    }

    /// <summary>The client's work per streamed chunk field.</summary>
    [Benchmark]
    public byte[] OpenField() => AciFieldCipher.Open(_recipient!, _field, Aad);
}
