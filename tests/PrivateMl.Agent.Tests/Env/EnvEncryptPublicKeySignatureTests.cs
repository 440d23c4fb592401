using System.Security.Cryptography;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>
/// The KMS signature over an app's env-encryption public key: dstack's published SDK vector (research/dstack.md
/// §6.4, v0.5.5 sdk/js verify-env-encrypt-public-key.test.ts) and the §6.3 signatures made with dstack's test roots.
/// </summary>
public sealed class EnvEncryptPublicKeySignatureTests
{
    // §6.4
    private const string SdkPublicKey = "e33a1832c6562067ff8f844a61e51ad051f1180b66ec2551fb0251735f3ee90a";
    private const string SdkSignature = "8542c49081fbf4e03f62034f13fbf70630bdf256a53032e38465a27c36fd6bed7a5e7111652004aef37f7fd92fbfc1285212c4ae6a6154203a48f5e16cad2cef00";
    private const string SdkSigner = "0217610d74cbd39b6143842c6d8bc310d79da1d82cc9d17f8876376221eda0c38f";

    // §6.3: dstack's test root CA scalar (A7), the synthetic root k256 key, the simulator app id.
    private const string TestRootCaScalar = "f57527cea4ab7ffb49af99b158cdc0e3ec06398f528349ea236b7d2afe19cec1";
    private const string AppId = "ea549f02e1a25fabd1cb788380e033ec5461b2ff";
    private const string EnvCryptKey = "226c77f981e1a9fbd28bc4088a75cd05205f9ff2f5f5d56bd5b14b7888c4433b";
    private const string EnvPublicKey = "31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244";
    private const string LegacySignature = "6eaa77d5526930ee18d3a0552fb9ca60ae3f433235009c27d864857d5a6e9c5256107d8f5790070c166d68df9490755907970e8759f0abc5657909779851a06d01";
    private const string SignatureV1At1760000000 = "9231e97ac8869bc582c37683a5c970e09a2d58f338e94b7de4b73ee434a3ab08227990fb855ea9d820c0a821c7d14cea6776b9cdbf2738e6fde60e13ac44bc9101";
    private const string RootK256PublicKey = "03b776f02b75cc0cffff272aa59d46200aa867ac3017e4885d25fa051149c5de25";

    private static readonly byte[] RootK256 = SHA256.HashData("dstack-report-test-k256-root"u8);

    [Fact]
    public void Recover_PublishedSdkVector_GivesTheExpectedSigner()
    {
        var signer = EnvEncryptPublicKeySignature.Recover(new byte[20], Convert.FromHexString(SdkPublicKey), Convert.FromHexString(SdkSignature));
        Assert.Equal(SdkSigner, Convert.ToHexStringLower(signer!));
    }

    [Fact]
    public void Recover_Rejects_64ByteSignature_And_65ZeroBytes()
    {
        var sixtyFour = Convert.FromHexString(SdkSignature)[..64];
        Assert.Null(EnvEncryptPublicKeySignature.Recover(new byte[20], Convert.FromHexString(SdkPublicKey), sixtyFour));
        Assert.Null(EnvEncryptPublicKeySignature.Recover(new byte[20], Convert.FromHexString(SdkPublicKey), new byte[65]));
    }

    [Fact]
    public void Recover_AcceptsEthereumStyleRecoveryId()
    {
        var signature = Convert.FromHexString(SdkSignature);
        signature[64] += 27;
        var signer = EnvEncryptPublicKeySignature.Recover(new byte[20], Convert.FromHexString(SdkPublicKey), signature);
        Assert.Equal(SdkSigner, Convert.ToHexStringLower(signer!));
    }

    [Theory]
    [InlineData("app_id")]
    [InlineData("public_key")]
    [InlineData("signature")]
    public void Recover_TamperedInput_GivesAnotherSignerOrNone(string field)
    {
        var appId = new byte[20];
        var publicKey = Convert.FromHexString(SdkPublicKey);
        var signature = Convert.FromHexString(SdkSignature);
        var target = field switch { "app_id" => appId, "public_key" => publicKey, _ => signature };
        target[5] ^= 0x01;

        var signer = EnvEncryptPublicKeySignature.Recover(appId, publicKey, signature);
        Assert.NotEqual(SdkSigner, signer is null ? null : Convert.ToHexStringLower(signer));
    }

    [Fact]
    public void EnvPublicKey_FromDstackTestRoot_MatchesVector()
    {
        var envKey = AppKeyDerivation.EnvCryptKey(Convert.FromHexString(TestRootCaScalar), Convert.FromHexString(AppId));
        Assert.Equal(EnvCryptKey, Convert.ToHexStringLower(envKey));
        Assert.Equal(EnvPublicKey, Convert.ToHexStringLower(EncryptedEnv.PublicKeyOf(envKey)));
    }

    [Fact]
    public void Sign_Legacy_MatchesVector_AndRecoversRoot()
    {
        var signature = EnvEncryptPublicKeySignature.Sign(RootK256, Convert.FromHexString(AppId), Convert.FromHexString(EnvPublicKey));
        Assert.Equal(LegacySignature, Convert.ToHexStringLower(signature));
        Assert.Equal(RootK256PublicKey, Convert.ToHexStringLower(EnvEncryptPublicKeySignature.SignerPublicKey(RootK256)));
        var signer = EnvEncryptPublicKeySignature.Recover(Convert.FromHexString(AppId), Convert.FromHexString(EnvPublicKey), signature);
        Assert.Equal(RootK256PublicKey, Convert.ToHexStringLower(signer!));
    }

    [Fact]
    public void SignV1_MatchesVector_AndRecoversRootOnlyForItsTimestamp()
    {
        var appId = Convert.FromHexString(AppId);
        var publicKey = Convert.FromHexString(EnvPublicKey);
        var signature = EnvEncryptPublicKeySignature.SignV1(RootK256, appId, 1760000000, publicKey);
        Assert.Equal(SignatureV1At1760000000, Convert.ToHexStringLower(signature));
        Assert.Equal(RootK256PublicKey, Convert.ToHexStringLower(EnvEncryptPublicKeySignature.RecoverV1(appId, 1760000000, publicKey, signature)!));

        var otherTime = EnvEncryptPublicKeySignature.RecoverV1(appId, 1760000001, publicKey, signature);
        Assert.NotEqual(RootK256PublicKey, otherTime is null ? null : Convert.ToHexStringLower(otherTime));
        var asLegacy = EnvEncryptPublicKeySignature.Recover(appId, publicKey, signature);
        Assert.NotEqual(RootK256PublicKey, asLegacy is null ? null : Convert.ToHexStringLower(asLegacy));
    }
}
