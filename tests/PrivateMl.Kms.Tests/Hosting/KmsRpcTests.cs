using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Tests.Support;

namespace PrivateMl.Kms.Tests.Hosting;

/// <summary>The KMS RPC surface over loopback TLS: dstack's JSON, the key chain, restart persistence and key epochs.</summary>
public sealed class KmsRpcTests
{
    [Fact]
    public async Task GetAppKey_ReleasesTheAttestedAppsKeys_SignedByTheMetaRoot()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var certificate = await cvm.CertificateAsync();
        using var meta = await bed.CallAsync("GetMeta", null);
        using var response = await bed.CallAsync("KMS.GetAppKey", certificate, w =>
        {
            w.WriteNumber("api_version", 1);
            w.WriteString("vm_config", "{\"os_image_hash\":\"\"}");
        });
        var root = response.RootElement;
        string[] dstackFields = ["ca_cert", "disk_crypt_key", "env_crypt_key", "k256_key", "k256_signature", "tproxy_app_id", "gateway_app_id", "os_image_hash"];
        Assert.Equal([.. dstackFields, "epoch"], root.EnumerateObject().Select(p => p.Name));

        using var roots = KmsRootKeys.Open(bed.StateDirectory);
        using var expected = roots.DeriveAppKeys(cvm.AppId, cvm.InstanceId, 1);
        Assert.Equal(expected.DiskCryptKey, KmsClient.Hex(root, "disk_crypt_key"));
        Assert.Equal(expected.EnvCryptKey, KmsClient.Hex(root, "env_crypt_key"));
        var k256 = KmsClient.Hex(root, "k256_key");
        Assert.Equal(expected.K256Key, k256);

        var digest = Hashes.Keccak256([.. "dstack-kms-issued:"u8, .. cvm.AppId, .. Secp256k1.CompressedPublicKey(k256)]);
        Assert.Equal(KmsClient.Hex(meta.RootElement, "k256_pubkey"), Secp256k1.Recover(digest, KmsClient.Hex(root, "k256_signature")));
        Assert.Equal(meta.RootElement.GetProperty("ca_cert").GetString(), root.GetProperty("ca_cert").GetString());
    }

    [Fact]
    public async Task GetMeta_CarriesABootstrapQuoteOverDstacksReportData()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var meta = await bed.CallAsync("GetMeta", null);
        var bootstrap = meta.RootElement.GetProperty("bootstrap_info");
        var quote = Attestation.Tdx.TdxQuote.Parse(KmsClient.Hex(bootstrap, "quote"));
        var expected = Rpc.KmsService.BootstrapReportData(KmsClient.Hex(bootstrap, "ca_pubkey"), KmsClient.Hex(bootstrap, "k256_pubkey"));
        Assert.Equal(expected, quote.ReportData.ToArray());
        Assert.True(meta.RootElement.GetProperty("is_dev").GetBoolean());
    }

    [Fact]
    public async Task UnknownMethod_Is404()
    {
        await using var bed = await KmsTestbed.StartAsync();
        var e = await Assert.ThrowsAsync<KmsClientException>(() => bed.CallAsync("GetNothing", null));
        Assert.Equal(404, e.StatusCode);
    }

    // Past the socket buffers too: the 413 must arrive, not a reset mid-send.
    [Theory]
    [InlineData(2)]
    [InlineData(768 * 1024)]
    public async Task BodyOverTheLimit_Is413(int excess)
    {
        await using var bed = await KmsTestbed.StartAsync();
        var e = await Assert.ThrowsAsync<KmsClientException>(() => bed.CallAsync("GetMeta", null, w => w.WriteString("pad", new string('0', bed.Options.MaxRequestBodyBytes + excess))));
        Assert.Equal(413, e.StatusCode);
        Assert.Contains("larger than", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetAppEnvEncryptPubKey_IsSignedByTheMetaRoot()
    {
        await using var bed = await KmsTestbed.StartAsync();
        var appId = Convert.FromHexString("00112233445566778899aabbccddeeff00112233");
        using var meta = await bed.CallAsync("GetMeta", null);
        using var response = await bed.CallAsync("GetAppEnvEncryptPubKey", null, w => w.WriteString("app_id", Convert.ToHexStringLower(appId)));
        var published = AppEnvEncryptPublicKey.Parse(Encoding.UTF8.GetBytes(response.RootElement.GetRawText()));
        Assert.Equal(KmsClient.Hex(meta.RootElement, "k256_pubkey"), EnvEncryptPublicKeySignature.Recover(appId, published.PublicKey, published.Signature));
    }

    [Fact]
    public async Task Restart_KeepsRootKeysAndAppKeys()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        string k256Before, caBefore, keyBefore;
        using (var meta = await bed.CallAsync("GetMeta", null))
        using (var keys = await bed.GetAppKeyAsync(cvm))
        {
            k256Before = meta.RootElement.GetProperty("k256_pubkey").GetString()!;
            caBefore = meta.RootElement.GetProperty("ca_cert").GetString()!;
            keyBefore = keys.RootElement.GetProperty("k256_key").GetString()!;
        }

        await bed.RestartAsync();
        using var metaAfter = await bed.CallAsync("GetMeta", null);
        using var keysAfter = await bed.GetAppKeyAsync(cvm);
        Assert.Equal(k256Before, metaAfter.RootElement.GetProperty("k256_pubkey").GetString());
        Assert.Equal(caBefore, metaAfter.RootElement.GetProperty("ca_cert").GetString());
        Assert.Equal(keyBefore, keysAfter.RootElement.GetProperty("k256_key").GetString());
    }

    [Fact]
    public async Task Rotation_OldEpochDecryptsUntilRetired_NewEpochHasOtherKeys()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        var appIdHex = Convert.ToHexStringLower(cvm.AppId);
        using var published = await bed.CallAsync("GetAppEnvEncryptPubKey", null, w => w.WriteString("app_id", appIdHex));
        Assert.Equal(1u, published.RootElement.GetProperty("epoch").GetUInt32());
        var secret = "{\"env\":[{\"key\":\"API_TOKEN\",\"value\":\"s3cret\"}]}"u8.ToArray();
        var blob = EncryptedEnv.Encrypt(secret, KmsClient.Hex(published.RootElement, "public_key"), System.Security.Cryptography.RandomNumberGenerator.Create());

        var epochs = new KeyEpochStore(bed.StateDirectory, bed.Clock);
        Assert.Equal(2u, epochs.Rotate());

        byte[] currentEnvKey;
        using (var current = await bed.GetAppKeyAsync(cvm))
        {
            Assert.Equal(2u, current.RootElement.GetProperty("epoch").GetUInt32());
            currentEnvKey = KmsClient.Hex(current.RootElement, "env_crypt_key");
        }

        Assert.ThrowsAny<Exception>(() => EncryptedEnv.Decrypt(blob, currentEnvKey));
        using (var old = await bed.GetAppKeyAsync(cvm, w => w.WriteNumber("epoch", 1)))
        {
            Assert.Equal(1u, old.RootElement.GetProperty("epoch").GetUInt32());
            Assert.NotEqual(currentEnvKey, KmsClient.Hex(old.RootElement, "env_crypt_key"));
            Assert.Equal(secret, EncryptedEnv.Decrypt(blob, KmsClient.Hex(old.RootElement, "env_crypt_key")));
        }

        using (var republished = await bed.CallAsync("GetAppEnvEncryptPubKey", null, w => w.WriteString("app_id", appIdHex)))
        {
            Assert.Equal(2u, republished.RootElement.GetProperty("epoch").GetUInt32());
            Assert.NotEqual(published.RootElement.GetProperty("public_key").GetString(), republished.RootElement.GetProperty("public_key").GetString());
        }

        epochs.Retire(1);
        Assert.Equal(ErrorCode.KmsEpochRetired, await bed.GetAppKeyRefusalAsync(cvm, w => w.WriteNumber("epoch", 1)));
        Assert.Equal(ErrorCode.KmsEpochUnknown, await bed.GetAppKeyRefusalAsync(cvm, w => w.WriteNumber("epoch", 9)));
    }
}
