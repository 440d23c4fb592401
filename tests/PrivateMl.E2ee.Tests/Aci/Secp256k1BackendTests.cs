using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.E2ee.Aci;
using PrivateMl.Testing;

namespace PrivateMl.E2ee.Tests.Aci;

/// <summary>
/// The native (libsecp256k1) and managed (NBitcoin) secp256k1 backends: both reproduce the vectors, give identical bytes
/// on random keys, refuse the same bad inputs, and the managed one takes over when the library is absent.
/// </summary>
public sealed class Secp256k1BackendTests
{
    // n, the order of the group, and p, the field prime.
    private const string Order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    private const string Prime = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f";

    public static TheoryData<string> Backends => ["native", "managed"];

    [Fact]
    public void The_native_library_ships_for_this_platform_and_is_the_default()
    {
        // Secp256k1.Net 2.0.0 carries runtimes/{linux,linux-musl,osx,win}-{x64,arm64}/native; elsewhere the managed port serves.
        var shipped = (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsWindows())
            && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;
        Assert.SkipUnless(shipped, $"Secp256k1.Net ships no libsecp256k1 for {RuntimeInformation.RuntimeIdentifier}");
        Assert.NotNull(Secp256k1Backend.Native);
        var forced = Environment.GetEnvironmentVariable(Secp256k1Backend.EnvironmentVariable);
        Assert.Equal(string.Equals(forced, "managed", StringComparison.OrdinalIgnoreCase) ? "managed" : "native", Secp256k1Backend.Default.Name);
    }

    [Fact]
    public void The_managed_port_takes_over_when_the_library_is_absent_or_forced_off()
    {
        Assert.Null(NativeSecp256k1Backend.TryCreate(() => throw new DllNotFoundException("libsecp256k1.so")));
        Assert.Same(Secp256k1Backend.Managed, Secp256k1Backend.Select(null, () => null));
        Assert.Same(Secp256k1Backend.Managed, Secp256k1Backend.Select("managed", () => Secp256k1Backend.Native));
        var native = Secp256k1Backend.Native;
        Assert.SkipWhen(native is null, "libsecp256k1 is not loadable here");
        Assert.Same(native, Secp256k1Backend.Select(null, () => native));
        Assert.Same(native, Secp256k1Backend.Select("native", () => native));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void Both_ecdh_vectors_give_the_raw_x_coordinate(string name)
    {
        var backend = Backend(name);
        using var doc = JsonDocument.Parse(SharedTestData.ReadText(AciVectors.Derived));
        var v2 = doc.RootElement.GetProperty("aci_e2ee_v2_field_ciphertexts")[2];
        var legacy = doc.RootElement.GetProperty("legacy_field_ciphertexts")[0];
        foreach (var (secret, peer, expected) in new[]
        {
            (v2.S("ephemeral_secret"), v2.S("recipient_public_uncompressed"), v2.S("ecdh_shared_secret_x")),
            (v2.S("recipient_secret"), v2.S("ephemeral_public_uncompressed"), v2.S("ecdh_shared_secret_x")),
            (legacy.S("ephemeral_secret"), "04" + legacy.S("recipient_public_64_no_prefix"), legacy.S("ecdh_shared_secret_x")),
            (legacy.S("recipient_secret"), legacy.S("ephemeral_public_uncompressed"), legacy.S("ecdh_shared_secret_x")),
        })
        {
            var shared = new byte[32];
            Assert.True(backend.TryAgree(Convert.FromHexString(secret), Convert.FromHexString(peer), shared));
            Assert.Equal(expected, Convert.ToHexStringLower(shared));
        }

        var publicKey = new byte[65];
        Assert.True(backend.TryCreatePublicKey(Convert.FromHexString(v2.S("recipient_secret")), publicKey));
        Assert.Equal(v2.S("recipient_public_uncompressed"), Convert.ToHexStringLower(publicKey));
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void The_secp256k1_field_vector_seals_and_opens_on_both(string name)
    {
        var backend = Backend(name);
        var v = AciVectors.FieldCiphertext(2);
        Assert.Equal("secp256k1-aes-256-gcm-hkdf-sha256", v.S("suite"));
        var aad = Encoding.UTF8.GetBytes(v.S("aad_utf8"));
        using var ephemeral = AciPrivateKey.FromSecret(AciSuite.Secp256k1, Convert.FromHexString(v.S("ephemeral_secret")), backend);
        Assert.Equal(v.S("ephemeral_public_uncompressed"), ephemeral.PublicKeyHex);
        var field = AciFieldCipher.Seal(
            ephemeral, Convert.FromHexString(v.S("aes_gcm_nonce")), Convert.FromHexString(v.S("recipient_public_uncompressed")), Encoding.UTF8.GetBytes(v.S("plaintext_utf8")), aad);
        Assert.Equal(v.S("field_value_hex"), field);

        using var recipient = AciPrivateKey.FromSecret(AciSuite.Secp256k1, Convert.FromHexString(v.S("recipient_secret")), backend);
        Assert.Equal(v.S("plaintext_utf8"), Encoding.UTF8.GetString(AciFieldCipher.Open(recipient, v.S("field_value_hex"), aad)));
    }

    [Fact]
    public void Native_and_managed_agree_byte_for_byte_on_random_keys()
    {
        var native = RequireNative();
        var managed = Secp256k1Backend.Managed;
        for (var i = 0; i < 32; i++)
        {
            var secret = RandomSecret();
            using var a = AciPrivateKey.FromSecret(AciSuite.Secp256k1, secret, native);
            using var aManaged = AciPrivateKey.FromSecret(AciSuite.Secp256k1, secret, managed);
            using var b = AciPrivateKey.Create(AciSuite.Secp256k1, null, managed);
            Assert.Equal(a.PublicKeyHex, aManaged.PublicKeyHex);
            var nativeShared = a.Agree(b.PublicKey);
            var managedShared = aManaged.Agree(b.PublicKey);
            Assert.NotNull(nativeShared);
            Assert.Equal(nativeShared, managedShared);
            Assert.Equal(nativeShared, b.Agree(a.PublicKey)); // and it is a key agreement

            // A field sealed on one backend opens on the other.
            var sealedNative = AciFieldCipher.Seal(AciSuite.Secp256k1, b.PublicKey, "x"u8, "aad"u8);
            Assert.Equal("x", Encoding.UTF8.GetString(AciFieldCipher.Open(b, sealedNative, "aad"u8)));
        }
    }

    public static TheoryData<string> BadSecrets =>
    [
        new string('0', 64),
        Order,
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364142",
        new string('f', 64),
        "01", // short
    ];

    [Theory]
    [MemberData(nameof(BadSecrets))]
    public void Both_refuse_the_same_secrets(string secretHex)
    {
        var secret = Convert.FromHexString(secretHex);
        var peer = PublicKeyOf(Secp256k1Backend.Managed, 5);
        foreach (var backend in AvailableBackends())
        {
            Assert.False(backend.IsValidSecret(secret), backend.Name);
            Assert.False(backend.TryCreatePublicKey(secret, new byte[65]), backend.Name);
            Assert.False(backend.TryAgree(secret, peer, new byte[32]), backend.Name);
        }

        Assert.Throws<CryptographicException>(() => AciPrivateKey.FromSecret(AciSuite.Secp256k1, secret, Secp256k1Backend.Managed));
    }

    [Fact]
    public void Both_refuse_the_same_public_keys()
    {
        var valid = PublicKeyOf(Secp256k1Backend.Managed, 7);
        var offCurve = (byte[])valid.Clone();
        offCurve[64] ^= 1;
        var hybrid = (byte[])valid.Clone();
        hybrid[0] = (byte)(0x06 | (valid[64] & 1)); // SEC1 hybrid form of the same point
        var compressed = new byte[33];
        compressed[0] = (byte)(0x02 | (valid[64] & 1));
        valid.AsSpan(1, 32).CopyTo(compressed.AsSpan(1));
        var xTooLarge = Convert.FromHexString("04" + Prime + Convert.ToHexString(valid.AsSpan(33)));
        byte[][] bad = [offCurve, hybrid, compressed, xTooLarge, new byte[65], [0x04, .. valid.AsSpan(1, 63)], [.. valid, 0]];
        var secret = new byte[32];
        secret[31] = 3;
        foreach (var backend in AvailableBackends())
        {
            Assert.True(backend.IsValidPublicKey(valid), backend.Name);
            Assert.True(backend.TryAgree(secret, valid, new byte[32]), backend.Name);
            foreach (var key in bad)
            {
                Assert.False(backend.IsValidPublicKey(key), $"{backend.Name} {Convert.ToHexStringLower(key)}");
                Assert.False(backend.TryAgree(secret, key, new byte[32]), $"{backend.Name} {Convert.ToHexStringLower(key)}");
            }
        }
    }

    private static Secp256k1Backend Backend(string name) => name == "managed" ? Secp256k1Backend.Managed : RequireNative();

    private static Secp256k1Backend RequireNative()
    {
        var native = Secp256k1Backend.Native;
        Assert.SkipWhen(native is null, "libsecp256k1 is not loadable here (the managed port serves)");
        return native!;
    }

    private static IEnumerable<Secp256k1Backend> AvailableBackends() =>
        Secp256k1Backend.Native is { } native ? [native, Secp256k1Backend.Managed] : [Secp256k1Backend.Managed];

    private static byte[] PublicKeyOf(Secp256k1Backend backend, byte scalar)
    {
        var secret = new byte[32];
        secret[31] = scalar;
        var output = new byte[65];
        Assert.True(backend.TryCreatePublicKey(secret, output));
        return output;
    }

    private static byte[] RandomSecret()
    {
        var secret = new byte[32];
        do
        {
            RandomNumberGenerator.Fill(secret);
        }
        while (!Secp256k1Backend.Managed.IsValidSecret(secret));
        return secret;
    }
}
