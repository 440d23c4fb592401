using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Kms.Hosting;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.RaTls;
using PrivateMl.Kms.Rpc;
using PrivateMl.Kms.Tests.Support;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Kms.Tests.Keys;

/// <summary>
/// dstack's KMS derivations with its test root CA key. The vectors are quoted from ../shared/research/dstack.md §6.3
/// (root CA scalar from A7 §6.7, synthetic root k256 key) and §6.7 A12; epoch 1 must reproduce them exactly and
/// every later epoch must differ.
/// </summary>
public sealed class KmsKeyDerivationTests : IDisposable
{
    // dstack.md §6.3
    private static readonly byte[] RootCaScalar = Convert.FromHexString("f57527cea4ab7ffb49af99b158cdc0e3ec06398f528349ea236b7d2afe19cec1");
    private static readonly byte[] RootK256 = Convert.FromHexString("ad9b4ec90e438822934fcaffd9a008563984a7ea9c2fa89e23082bcfa2df11d5");
    private static readonly byte[] AppId = Convert.FromHexString("ea549f02e1a25fabd1cb788380e033ec5461b2ff");
    private static readonly byte[] InstanceId = Convert.FromHexString("59df8036b824b0aac54f8998b9e1fb2a0cfc5d3a");

    private readonly string _directory = Directory.CreateTempSubdirectory("privateml-kms-keys-").FullName;
    private readonly KmsRootKeys _roots = KmsRootKeys.FromScalars(RootCaScalar, RootK256, RandomNumberGenerator.Create());

    [Fact]
    public void Epoch1_GivesDstackKeys()
    {
        using var keys = _roots.DeriveAppKeys(AppId, InstanceId, 1);
        Assert.Equal("536adff06967a03eb816df0387b9cc74bb6734daa2789e646e3cfa5ee2ffd101", Convert.ToHexStringLower(keys.DiskCryptKey));
        Assert.Equal("226c77f981e1a9fbd28bc4088a75cd05205f9ff2f5f5d56bd5b14b7888c4433b", Convert.ToHexStringLower(keys.EnvCryptKey));
        Assert.Equal("351a0546d0144dc8492803e3373af57f656aa900ce8d78a05b4aa92bc2f90a38", Convert.ToHexStringLower(keys.K256Key));
        Assert.Equal(
            "65e4c16c2b1989879a58d441508a19feef9267980411c659c44f573d5591eaee7b517bfaf1386b261eaef1cf6f56a52e31f87e0775dbaa2c3816aa8e469dce0001",
            Convert.ToHexStringLower(keys.K256Signature));
        Assert.Equal("31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244", Convert.ToHexStringLower(EncryptedEnv.PublicKeyOf(keys.EnvCryptKey)));
        Assert.Equal("03b776f02b75cc0cffff272aa59d46200aa867ac3017e4885d25fa051149c5de25", Convert.ToHexStringLower(_roots.K256PublicKey));
    }

    [Fact]
    public void GetAppEnvEncryptPubKey_Epoch1_GivesDstackSignatures()
    {
        var service = Service(new ManualClock(DateTimeOffset.FromUnixTimeSeconds(1760000000)));
        using var response = Parse(service.GetAppEnvEncryptPubKey(Args($"{{\"app_id\":\"0x{Convert.ToHexStringLower(AppId)}\"}}")));
        var root = response.RootElement;
        Assert.Equal("31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244", root.GetProperty("public_key").GetString());
        Assert.Equal(
            "6eaa77d5526930ee18d3a0552fb9ca60ae3f433235009c27d864857d5a6e9c5256107d8f5790070c166d68df9490755907970e8759f0abc5657909779851a06d01",
            root.GetProperty("signature").GetString());
        Assert.Equal(1760000000ul, root.GetProperty("timestamp").GetUInt64());
        Assert.Equal(
            "9231e97ac8869bc582c37683a5c970e09a2d58f338e94b7de4b73ee434a3ab08227990fb855ea9d820c0a821c7d14cea6776b9cdbf2738e6fde60e13ac44bc9101",
            root.GetProperty("signature_v1").GetString());
        Assert.Equal(1u, root.GetProperty("epoch").GetUInt32());
    }

    [Fact]
    public void LaterEpochs_ChangeEveryKey_ButStaySignedByTheRoot()
    {
        using var first = _roots.DeriveAppKeys(AppId, InstanceId, 1);
        using var second = _roots.DeriveAppKeys(AppId, InstanceId, 2);
        using var third = _roots.DeriveAppKeys(AppId, InstanceId, 3);
        foreach (var (a, b) in new[] { (first, second), (second, third), (first, third) })
        {
            Assert.NotEqual(a.DiskCryptKey, b.DiskCryptKey);
            Assert.NotEqual(a.EnvCryptKey, b.EnvCryptKey);
            Assert.NotEqual(a.K256Key, b.K256Key);
        }

        var appPublicKey = Secp256k1.CompressedPublicKey(second.K256Key);
        var digest = Hashes.Keccak256([.. "dstack-kms-issued:"u8, .. AppId, .. appPublicKey]);
        Assert.Equal(_roots.K256PublicKey, Secp256k1.Recover(digest, second.K256Signature));
    }

    [Fact]
    public void EpochRoot_IsTheRootForEpoch1Only()
    {
        Assert.Equal(RootK256, KmsRootKeys.EpochRoot(RootK256, 1));
        Assert.NotEqual(RootK256, KmsRootKeys.EpochRoot(RootK256, 2));
        Assert.Equal(KmsRootKeys.EpochRoot(RootK256, 2), KmsRootKeys.EpochRoot(RootK256, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => KmsRootKeys.EpochRoot(RootK256, 0));
    }

    [Fact]
    public void BootstrapReportData_MatchesA12()
    {
        // dstack.md §6.7 A12 (SPKI = the simulator KMS id of §6.1).
        var spki = Convert.FromHexString("3059301306072a8648ce3d020106082a8648ce3d0301070342000419b2457dd9b8aa6446d980f136fff7812ecd6c77740eeb0e28b10d56c0c00028a5b6e59dcea307d583bd1f70769e9c116df2bcfb1758a95d8613e7de1c8482c0");
        var k256 = Convert.FromHexString("03b776f02b75cc0cffff272aa59d46200aa867ac3017e4885d25fa051149c5de25");
        Assert.Equal(
            "09f9081648751ceb430a772880baef0da8f93884a0867965aa0e60ca755906cf" + new string('0', 64),
            Convert.ToHexStringLower(KmsService.BootstrapReportData(spki, k256)));
    }

    [Fact]
    public void RootKeys_PersistWithMode0600_AndReloadTheSame()
    {
        var state = Path.Combine(_directory, "state");
        byte[] caSpki, k256;
        using (var created = KmsRootKeys.OpenOrCreate(state, RandomNumberGenerator.Create()))
        {
            caSpki = created.RootCaSpki;
            k256 = created.K256PublicKey;
        }

        using var reopened = KmsRootKeys.OpenOrCreate(state, RandomNumberGenerator.Create());
        Assert.Equal(caSpki, reopened.RootCaSpki);
        Assert.Equal(k256, reopened.K256PublicKey);
        Assert.SkipWhen(OperatingSystem.IsWindows(), "file modes are POSIX");
        foreach (var file in Directory.GetFiles(state))
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, OperatingSystem.IsWindows() ? default : File.GetUnixFileMode(file));
        }
    }

    public void Dispose()
    {
        _roots.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private KmsService Service(TimeProvider clock)
    {
        using var platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions(), clock.GetUtcNow());
        var verifier = new RaTlsVerifier(
            new DcapVerifier(new DcapVerifierOptions { TrustedRootCertificate = platform.Pki.RootCertificate.RawData, AllowSimulated = true }),
            new SimulatedCollateralSource(platform, clock), new QuoteReplayCache(), clock);
        return new KmsService(_roots, new KeyEpochStore(_directory, clock), verifier, new KmsAuthorizer(null), new KmsOptions(), clock, NullLogger<KmsService>.Instance);
    }

    private static JsonElement Args(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    private static JsonDocument Parse(byte[] json) => JsonDocument.Parse(json);
}
