using System.Security.Cryptography;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Tests.Signing;

public sealed class SigningTests
{
    // The well-known web3.js / ethers test key (research/dotnet.md: its EIP-55 address).
    private const string TestKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string TestAddress = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";

    [Fact]
    public void Address_IsKeccakOfThePublicKey_Eip55Checksummed()
    {
        using var signer = new EthereumSigner(Convert.FromHexString(TestKey));

        Assert.Equal(TestAddress, signer.Address);
        Assert.Equal(Convert.FromHexString(TestAddress[2..]), signer.AddressBytes);
    }

    [Theory]
    [InlineData("hello")]
    [InlineData("a:b")]
    [InlineData("ünïcödé ✓")]
    public void PersonalSign_RecoversTheAddress_WithV27Or28(string text)
    {
        using var signer = new EthereumSigner(Convert.FromHexString(TestKey));

        var signature = signer.PersonalSign(text);

        Assert.Equal(132, signature.Length);
        Assert.StartsWith("0x", signature, StringComparison.Ordinal);
        Assert.Contains(Convert.FromHexString(signature[2..])[64], new byte[] { 27, 28 });
        Assert.Equal(TestAddress, EthereumSigner.RecoverAddress(text, signature));
        Assert.NotEqual(TestAddress, EthereumSigner.RecoverAddress(text + "x", signature));
    }

    [Fact]
    public void PersonalSign_EqualsEthersSignMessage()
    {
        // Computed with ethers 6.17.0: new Wallet(TestKey).signMessage("hello") (RFC 6979, so deterministic); the digest
        // (ethers hashMessage) is checked in PrivateMl.E2ee.Tests' Eip191Tests.
        using var signer = new EthereumSigner(Convert.FromHexString(TestKey));

        Assert.Equal(
            "0xa5d58782075bdf09490159d634d1aae66a8f6777c7247d2f233e9511cfd7c64c34f288cdbcea5370e4863fdbe9f4d86654c2ba1d86589e9ebb64494c649008591b",
            signer.PersonalSign("hello"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("0x1234")]
    [InlineData("zz")]
    public void RecoverAddress_ReturnsNull_ForMalformedSignatures(string signature) =>
        Assert.Null(EthereumSigner.RecoverAddress("text", signature));

    [Fact]
    public void Ed25519_SignsAndVerifies_AndRejectsAnotherMessage()
    {
        using var signer = Ed25519Signer.CreateRandom();
        var signature = Convert.FromHexString(signer.SignText("abc:def"));

        Assert.Equal(64, signature.Length);
        Assert.Equal(64, signer.Address.Length);
        Assert.True(Ed25519Signer.Verify(signer.PublicKey, "abc:def"u8, signature));
        Assert.False(Ed25519Signer.Verify(signer.PublicKey, "abc:deg"u8, signature));
    }

    [Fact]
    public void ReportDataPrefix_IsTheAddressOrKey_RightPaddedTo32()
    {
        using var keys = GatewaySigningKeys.CreateRandom(RandomNumberGenerator.Create());

        var ecdsa = keys.ReportDataPrefix("ecdsa");
        var ed = keys.ReportDataPrefix("ed25519");

        Assert.Equal(keys.EcdsaKey.AddressBytes, ecdsa[..20]);
        Assert.All(ecdsa[20..], b => Assert.Equal(0, b));
        Assert.Equal(keys.Ed25519Key.PublicKey, ed);
    }
}
