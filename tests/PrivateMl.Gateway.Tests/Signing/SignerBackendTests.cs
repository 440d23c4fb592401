using System.Security.Cryptography;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Tests.Signing;

/// <summary>
/// The response signer runs on the secp256k1 backend the ACI keys use: native libsecp256k1, or the managed NBitcoin port
/// when the library is absent or <c>PRIVATEML_SECP256K1=managed</c>. Both sign with RFC 6979 nonces and low s, so the
/// signatures are the same bytes and recover to the same address.
/// </summary>
public sealed class SignerBackendTests
{
    // The ethers test key and its signMessage("hello") (as in SigningTests).
    private const string TestKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string EthersHello = "0xa5d58782075bdf09490159d634d1aae66a8f6777c7247d2f233e9511cfd7c64c34f288cdbcea5370e4863fdbe9f4d86654c2ba1d86589e9ebb64494c649008591b";

    public static TheoryData<string> Backends => ["native", "managed"];

    [Theory]
    [MemberData(nameof(Backends))]
    public void EachBackend_SignsAsEthers(string name)
    {
        using var signer = new EthereumSigner(Convert.FromHexString(TestKey), Backend(name));

        Assert.Equal(name, signer.Implementation);
        Assert.Equal(EthersHello, signer.PersonalSign("hello"));
    }

    [Fact]
    public void BothBackends_GiveTheSameBytes_ThatRecoverToTheSigner_OnRandomKeysAndTexts()
    {
        var native = Secp256k1Backend.Native;
        Assert.SkipWhen(native is null, "libsecp256k1 is not loadable here");
        using var random = RandomNumberGenerator.Create();
        for (var i = 0; i < 32; i++)
        {
            var secret = RandomSecret(random);
            using var onNative = new EthereumSigner(secret, native);
            using var onManaged = new EthereumSigner(secret, Secp256k1Backend.Managed);
            var text = Convert.ToBase64String(RandomNumberGenerator.GetBytes(1 + i * 7));

            var fromNative = onNative.PersonalSign(text);
            var fromManaged = onManaged.PersonalSign(text);

            Assert.Equal(fromNative, fromManaged);
            Assert.Equal(onNative.Address, onManaged.Address);
            Assert.Equal(onNative.Address, EthereumSigner.RecoverAddress(text, fromManaged));
            Assert.NotEqual(onNative.Address, EthereumSigner.RecoverAddress(text + ".", fromManaged));
        }
    }

    [Fact]
    public void TheDefaultSigner_UsesTheAciBackend()
    {
        using var signer = new EthereumSigner(Convert.FromHexString(TestKey));

        Assert.Equal(Secp256k1Backend.Default.Name, signer.Implementation);
        Assert.Equal(AciSuites.Secp256k1Implementation, signer.Implementation);
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void EachBackend_RefusesABadSecretOrDigest(string name)
    {
        var backend = Backend(name);
        var signature = new byte[Secp256k1Backend.RecoverableSignatureBytes];
        var digest = new byte[32];
        var order = Convert.FromHexString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");

        Assert.False(backend.TrySignRecoverable(new byte[32], digest, signature));
        Assert.False(backend.TrySignRecoverable(order, digest, signature));
        Assert.False(backend.TrySignRecoverable(Convert.FromHexString(TestKey), new byte[31], signature));
        Assert.False(backend.TrySignRecoverable(Convert.FromHexString(TestKey), digest, new byte[64]));
        Assert.True(backend.TrySignRecoverable(Convert.FromHexString(TestKey), digest, signature));
        Assert.InRange(signature[64], 0, 3);
    }

    private static byte[] RandomSecret(RandomNumberGenerator random)
    {
        var secret = new byte[32];
        do
        {
            random.GetBytes(secret);
        }
        while (!Secp256k1Backend.Managed.IsValidSecret(secret));

        return secret;
    }

    private static Secp256k1Backend Backend(string name)
    {
        if (name == "managed")
        {
            return Secp256k1Backend.Managed;
        }

        var native = Secp256k1Backend.Native;
        Assert.SkipWhen(native is null, "libsecp256k1 is not loadable here");
        return native!;
    }
}
