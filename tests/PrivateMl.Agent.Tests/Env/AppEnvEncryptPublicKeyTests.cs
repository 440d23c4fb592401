using System.Security.Cryptography;
using System.Text;
using PrivateMl.Agent.Env;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>The GetAppEnvEncryptPubKey answer: JSON both ways, and the client's trust decision over it.</summary>
public sealed class AppEnvEncryptPublicKeyTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_760_000_000);
    private static readonly byte[] RootK256 = SHA256.HashData("dstack-report-test-k256-root"u8);
    private static readonly byte[] AppId = Convert.FromHexString("ea549f02e1a25fabd1cb788380e033ec5461b2ff");
    private static readonly byte[] EnvKey = Convert.FromHexString("226c77f981e1a9fbd28bc4088a75cd05205f9ff2f5f5d56bd5b14b7888c4433b");

    private static byte[] TrustedSigner => EnvEncryptPublicKeySignature.SignerPublicKey(RootK256);

    [Fact]
    public void Create_MatchesDstackVectors_AndJsonRoundTrips()
    {
        var served = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now);
        var json = Encoding.UTF8.GetString(served.ToJson());
        Assert.Equal(
            "{\"public_key\":\"31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244\","
            + "\"signature\":\"6eaa77d5526930ee18d3a0552fb9ca60ae3f433235009c27d864857d5a6e9c5256107d8f5790070c166d68df9490755907970e8759f0abc5657909779851a06d01\","
            + "\"timestamp\":1760000000,"
            + "\"signature_v1\":\"9231e97ac8869bc582c37683a5c970e09a2d58f338e94b7de4b73ee434a3ab08227990fb855ea9d820c0a821c7d14cea6776b9cdbf2738e6fde60e13ac44bc9101\"}",
            json);

        var parsed = AppEnvEncryptPublicKey.Parse(Encoding.UTF8.GetBytes(json));
        Assert.Equal(served.PublicKey, parsed.PublicKey);
        Assert.Equal(served.Signature, parsed.Signature);
        Assert.Equal(served.Timestamp, parsed.Timestamp);
        Assert.Equal(served.SignatureV1, parsed.SignatureV1);
    }

    [Fact]
    public void Verify_Accepts_TrustedFreshSignature()
    {
        var result = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now).Verify(AppId, [TrustedSigner], Now.AddSeconds(10));
        Assert.True(result.Accepted, result.Reason);
        Assert.True(result.Timestamped);
        Assert.Equal(TrustedSigner, result.Signer);
    }

    [Fact]
    public void Verify_Accepts_LegacyOnlyKms()
    {
        var served = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now);
        var legacy = AppEnvEncryptPublicKey.Parse(Encoding.UTF8.GetBytes(
            $"{{\"public_key\":\"0x{Convert.ToHexStringLower(served.PublicKey)}\",\"signature\":\"{Convert.ToHexStringLower(served.Signature)}\"}}"));
        var result = legacy.Verify(AppId, [TrustedSigner], Now);
        Assert.True(result.Accepted, result.Reason);
        Assert.False(result.Timestamped);
    }

    [Fact]
    public void Rejects_UntrustedSigner_NamingIt()
    {
        var other = SHA256.HashData("another kms"u8);
        var result = AppEnvEncryptPublicKey.Create(other, AppId, EnvKey, Now).Verify(AppId, [TrustedSigner], Now);
        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.EnvPublicKeySignerUntrusted, result.Code);
        Assert.Equal(EnvEncryptPublicKeySignature.SignerPublicKey(other), result.Signer);
    }

    [Fact]
    public void Rejects_KeySignedForAnotherApp()
    {
        var otherApp = new byte[20];
        var result = AppEnvEncryptPublicKey.Create(RootK256, otherApp, EnvKey, Now).Verify(AppId, [TrustedSigner], Now);
        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.EnvPublicKeySignerUntrusted, result.Code);
    }

    [Fact]
    public void Rejects_SwappedPublicKey()
    {
        var served = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now);
        var attacker = EncryptedEnv.PublicKeyOf(RandomNumberGenerator.GetBytes(32));
        var swapped = new AppEnvEncryptPublicKey(attacker, served.Signature, served.Timestamp, served.SignatureV1);
        Assert.False(swapped.Verify(AppId, [TrustedSigner], Now).Accepted);
    }

    [Theory]
    [InlineData(301, false)]
    [InlineData(300, true)]
    [InlineData(-60, true)]
    [InlineData(-61, false)]
    public void Freshness_BoundariesOfTimestampedSignature(int ageSeconds, bool accepted)
    {
        var result = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now).Verify(AppId, [TrustedSigner], Now.AddSeconds(ageSeconds));
        Assert.Equal(accepted, result.Accepted);
        if (!accepted)
        {
            Assert.Equal(ErrorCode.EnvPublicKeySignatureStale, result.Code);
        }
    }

    [Fact]
    public void Rejects_BadSignatureV1_WithoutFallingBackToLegacy()
    {
        var served = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now);
        var broken = new AppEnvEncryptPublicKey(served.PublicKey, served.Signature, served.Timestamp, new byte[65]);
        var result = broken.Verify(AppId, [TrustedSigner], Now);
        Assert.False(result.Accepted);
        Assert.Equal(ErrorCode.EnvPublicKeySignatureInvalid, result.Code);
    }

    [Fact]
    public void Rejects_MissingSignature()
    {
        var served = AppEnvEncryptPublicKey.Create(RootK256, AppId, EnvKey, Now);
        var result = new AppEnvEncryptPublicKey(served.PublicKey, []).Verify(AppId, [TrustedSigner], Now);
        Assert.Equal(ErrorCode.EnvPublicKeySignatureInvalid, result.Code);
    }

    [Theory]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("{\"public_key\":\"zz\"}")]
    [InlineData("{\"public_key\":\"abc\"}")]
    [InlineData("{\"public_key\":\"00\"}")]
    [InlineData("{\"public_key\":1}")]
    [InlineData("{\"public_key\":\"31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244\",\"timestamp\":-1}")]
    [InlineData("{\"public_key\":\"31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244\",\"timestamp\":\"soon\"}")]
    [InlineData("{\"error\": \"app not found\"}")]
    public void Parse_RejectsMalformedResponses(string json)
    {
        var error = Assert.Throws<AttestationException>(() => AppEnvEncryptPublicKey.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(ErrorCode.MalformedInput, error.Code);
    }

    [Fact]
    public void Parse_RejectsOversizedBody()
    {
        var body = new byte[AppEnvEncryptPublicKey.MaxJsonBytes + 1];
        Assert.Equal(ErrorCode.MalformedInput, Assert.Throws<AttestationException>(() => AppEnvEncryptPublicKey.Parse(body)).Code);
    }
}
