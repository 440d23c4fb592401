using System.Text;
using NBitcoin.Secp256k1;
using PrivateMl.E2ee.Signing;

namespace PrivateMl.E2ee.Tests.Signing;

public sealed class Eip191Tests
{
    // The well-known web3.js / ethers test key and its address.
    private const string TestKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    private const string TestAddress = "2c7536e3605d9c16a7a3d7b1898e529396a65c23";

    // new Wallet(TestKey).signMessage(text) with ethers 6.17.0 (RFC 6979, so deterministic).
    private const string HelloSignature = "a5d58782075bdf09490159d634d1aae66a8f6777c7247d2f233e9511cfd7c64c34f288cdbcea5370e4863fdbe9f4d86654c2ba1d86589e9ebb64494c649008591b";
    private const string ABSignature = "3a60d4cdddda6f27908c9e61d4fd4021ba3a4a28b8cbca1951e9c4a4267ca3de191a08c7f50f2ea9e197cba9ec98b711b6494895dd8e6364c288de4516c12c331b";

    [Fact]
    public void Keccak256_OfEmpty_IsTheKnownValue() =>
        Assert.Equal("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470", Convert.ToHexStringLower(Eip191.Keccak256([])));

    // ethers 6.17.0 hashMessage(text); the length in the prefix is the UTF-8 byte count, in decimal.
    [Theory]
    [InlineData("hello", "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750")]
    [InlineData("", "5f35dce98ba4fba25530a026ed80b2cecdaa31091ba4958b99b52ea1d068adad")]
    [InlineData("ünïcödé ✓", "4ba92931f1e635aa7d17e7e66e846862ee83133d00c94e323f4e428f6b6c7d8a")]
    public void PersonalMessageDigest_EqualsEthersHashMessage(string text, string expected) =>
        Assert.Equal(expected, Convert.ToHexStringLower(Eip191.PersonalMessageDigest(Encoding.UTF8.GetBytes(text))));

    [Fact]
    public void PersonalMessageDigest_WritesAFourDigitLength() =>
        Assert.Equal(
            "646dfe80977f3cb244f566d96cd3aabb891d47b9ba5159076d78e9999835e0d6",
            Convert.ToHexStringLower(Eip191.PersonalMessageDigest(Enumerable.Repeat((byte)'a', 1000).ToArray())));

    [Fact]
    public void AddressOf_IsTheLast20BytesOfKeccakOfThePublicKey()
    {
        Assert.True(ECPrivKey.TryCreate(Convert.FromHexString(TestKey), out var key));
        using (key)
        {
            Assert.Equal(TestAddress, Convert.ToHexStringLower(Eip191.AddressOf(key!.CreatePubKey().ToBytes(compressed: false))));
            Assert.Throws<ArgumentException>(() => Eip191.AddressOf(key.CreatePubKey().ToBytes(compressed: true)));
        }
    }

    [Theory]
    [InlineData("hello", HelloSignature)]
    [InlineData("a:b", ABSignature)]
    public void RecoverAddress_OfEthersSignatures_IsTheSigner(string text, string signature)
    {
        var bytes = Convert.FromHexString(signature);

        Assert.Equal(TestAddress, Convert.ToHexStringLower(Eip191.RecoverAddress(Encoding.UTF8.GetBytes(text), bytes)!));

        bytes[64] -= 27;
        Assert.Equal(TestAddress, Convert.ToHexStringLower(Eip191.RecoverAddress(Encoding.UTF8.GetBytes(text), bytes)!));
    }

    [Fact]
    public void RecoverAddress_OfAnotherMessage_IsAnotherAddress()
    {
        var recovered = Eip191.RecoverAddress("hello!"u8, Convert.FromHexString(HelloSignature));

        Assert.NotEqual(TestAddress, recovered is null ? null : Convert.ToHexStringLower(recovered));
    }

    [Theory]
    [InlineData(64, 27)]
    [InlineData(66, 27)]
    [InlineData(65, 31)]
    [InlineData(65, 4)]
    public void RecoverAddress_IsNull_ForMalformedSignatures(int length, byte v)
    {
        var bytes = new byte[length];
        Convert.FromHexString(HelloSignature).AsSpan(0, Math.Min(64, length)).CopyTo(bytes);
        if (length > 64)
        {
            bytes[64] = v;
        }

        Assert.Null(Eip191.RecoverAddress("hello"u8, bytes));
    }

    [Fact]
    public void RecoverAddress_IsNull_ForAZeroSignature() =>
        Assert.Null(Eip191.RecoverAddress("hello"u8, new byte[Eip191.SignatureBytes]));
}
