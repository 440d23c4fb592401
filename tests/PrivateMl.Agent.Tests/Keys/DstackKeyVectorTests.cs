using System.Security.Cryptography;
using System.Text;
using PrivateMl.Agent.Keys;

namespace PrivateMl.Agent.Tests.Keys;

/// <summary>
/// dstack's own key vectors (research/dstack.md §6.2, §6.3, §6.5, §6.7): our derivations must give the same bytes
/// for the same roots and paths.
/// </summary>
public sealed class DstackKeyVectorTests
{
    // §6.1: dstack v0.5.5 sdk/simulator appkeys.json and event log.
    private const string SimulatorK256Key = "e0e5d254fb944dcc370a2e5288b336a1e809871545a73ee645368957fefa31f9";
    private const string SimulatorK256Signature = "2f431c7956869a4fe3e028c5f9518a935e2d01e81a3628f8b1d178fc2fac7b6d2405ace433624e5568e23c4ed291dbaf60dac79b756837c0fe745154ebfdc0a601";
    private const string SimulatorAppId = "ea549f02e1a25fabd1cb788380e033ec5461b2ff";
    private const string SimulatorInstanceId = "59df8036b824b0aac54f8998b9e1fb2a0cfc5d3a";

    // §6.7 A7: dstack's test root CA key (PKCS#8 DER) and §6.3 synthetic root k256.
    private const string TestRootCaDer = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420f57527cea4ab7ffb49af99b158cdc0e3ec06398f528349ea236b7d2afe19cec1a1440342000491f50522407ce29dce3ed7d31a15d80c1c42f13a23552d2b33a0ce09ee11e47bce95936f3e7f80d195f879e28e1b144ef37ac9ab8e36a690cbf930b775897b27";
    private const string TestRootCaScalar = "f57527cea4ab7ffb49af99b158cdc0e3ec06398f528349ea236b7d2afe19cec1";

    private static readonly byte[] TestRootK256 = SHA256.HashData("dstack-report-test-k256-root"u8);

    public static TheoryData<string, string, string, string, string> GetKeyVectors => new()
    {
        // path, purpose, algorithm, key, signature_chain[0]
        { "/test/path", "test-purpose", "secp256k1", "50e62363110ce0c1ec0546671fd06c6b8a2c71a2af6467d34ac56d57170c9581", "5ddfe43b56ff5dcaf4ce97ac1cf1f0cf38dc13d1f973fc0d3920068fde42c499320deba46037279c390444de88609ace95e931898a45480184dbd2f9a9fde8b101" },
        { "", "", "secp256k1", "38309afef2058aef6aee6ef7baca26942986ee387836a0dbdb5791f4f5a8142c", "9f3f2ca85e1ac9ef4acb716658a66d8b0b0926f8445121638356596b865b40af5db2b2fa02f143f6a0f0e31c799ea5ed93bcb284572b18c816ff4a1f4ecb744b00" },
        { "/test/path", "test-purpose", "ed25519", "50e62363110ce0c1ec0546671fd06c6b8a2c71a2af6467d34ac56d57170c9581", "d57e1f9b5553a197f553ea004ea52b3ab4db0328862f6ce23ea6211ea14ee0e4020a50a9535f02580d3329f6315d51cd38f1b74819d62c8492b52b24886d4ac601" },
        { "vms", "signing", "secp256k1", "289c61d2c0f5e84ca473b80c3bab3de8b7c6846be76fafdd519a5c750637b1a3", "03a7170f5efb8e13f4a46cb3e7579bb91218bc98bbc32203171bf1abba6349437c4962f01d1ae31c651a9513eb324cf526068ba887f4872ba6353dd319e4331c01" },
        { "vms", "signing", "ed25519", "289c61d2c0f5e84ca473b80c3bab3de8b7c6846be76fafdd519a5c750637b1a3", "39ddab2b4fa01bacf02ab622a0ce16a33c01ac24b86794e4c4e21e7bbe6b711714d5177ace2557a011b774c91a102745b78652db1eb8035dd4fc6cc7e678a9bf00" },
    };

    [Theory]
    [MemberData(nameof(GetKeyVectors))]
    public void GetKey_MatchesDstack(string path, string purpose, string algorithm, string expectedKey, string expectedSignature0)
    {
        Assert.True(AlgorithmNames.TryParseKeyAlgorithm(algorithm, out var parsed));
        using var keys = SimulatorAppKeys();
        var derived = new GuestKeyDerivation(keys).GetKey(path, purpose, parsed);

        Assert.Equal(expectedKey, Convert.ToHexStringLower(derived.Key));
        Assert.Equal(2, derived.SignatureChain.Count);
        Assert.Equal(expectedSignature0, Convert.ToHexStringLower(derived.SignatureChain[0]));
        Assert.Equal(SimulatorK256Signature, Convert.ToHexStringLower(derived.SignatureChain[1]));
    }

    [Theory]
    [InlineData("/test/path", "test-purpose", "secp256k1", "039aa5e9849930bb46f72bc6a06bf569546cf116795da0a679b98ff54627285fac")]
    [InlineData("", "", "secp256k1", "03a907a097e19f27b9c320acfa90e744c24c6c0fd73c07faf28d70ec633a985ac7")]
    [InlineData("/test/path", "test-purpose", "ed25519", "993b1e503dad9b9b7ad99410a7b1c97ee7a6878536dd3c6d2ea83cb054c403fd")]
    [InlineData("vms", "signing", "ed25519", "e7a03628d8995c7bcb8ac2d426a1bb042f285a477b8832c58b2b575e8aab3f05")]
    public void GetKey_PublicKeyMatchesDstack(string path, string purpose, string algorithm, string expectedPublicKey)
    {
        Assert.True(AlgorithmNames.TryParseKeyAlgorithm(algorithm, out var parsed));
        using var keys = SimulatorAppKeys();
        Assert.Equal(expectedPublicKey, Convert.ToHexStringLower(new GuestKeyDerivation(keys).GetKey(path, purpose, parsed).PublicKey));
    }

    [Fact]
    public void SignatureChain_RecoversSimulatorAppAndKmsKeys()
    {
        // Verified the way dstack's Go SDK test does (dstack.md §5.5).
        using var keys = SimulatorAppKeys();
        var derived = new GuestKeyDerivation(keys).GetKey("/test/path", "test-purpose", KeyAlgorithm.Secp256k1);

        var appMessage = Encoding.UTF8.GetBytes("test-purpose:" + Convert.ToHexStringLower(derived.PublicKey));
        var appPub = Secp256k1.Recover(Hashes.Keccak256(appMessage), derived.SignatureChain[0]);
        Assert.Equal("02b85cceca0c02d878f0ebcda72a97469a472416eb6faf3c4807642132f9786810", Convert.ToHexStringLower(appPub!));

        var kmsMessage = AppKeyDerivation.Concat("dstack-kms-issued:"u8.ToArray(), Convert.FromHexString(SimulatorAppId), appPub!);
        var kmsPub = Secp256k1.Recover(Hashes.Keccak256(kmsMessage), derived.SignatureChain[1]);
        Assert.Equal("02cad3a8bb11c5c0858fb3e402048b5137457039d577986daade678ed4b4ab1b9b", Convert.ToHexStringLower(kmsPub!));
    }

    [Theory]
    [InlineData("secp256k1", "e04f28f42eb8086b0b585ebb9671fc9eb9a84bd42ec4f3f7cb74f708090123882863f4c93a91889e565420ab9f186e406f1973702768b66941b2f2b6de2f0cb9")]
    [InlineData("ed25519", "265725f2e9065225d70ffa67e72c3f4050dba4cac9092c711cf4d830518537d8fcc9daf06b840f756974704320878aa19b7a23932024ac904346c9c8520d8b0c")]
    public void Sign_MatchesDstack_AndVerifies(string algorithm, string expectedSignature)
    {
        Assert.True(AlgorithmNames.TryParseSignatureAlgorithm(algorithm, out var parsed));
        using var keys = SimulatorAppKeys();
        var result = new GuestKeyDerivation(keys).Sign(parsed, "hello"u8);

        Assert.Equal(expectedSignature, Convert.ToHexStringLower(result.Signature));
        Assert.Equal(3, result.SignatureChain.Count);
        Assert.Equal(result.Signature, result.SignatureChain[0]);
        Assert.True(GuestKeyDerivation.Verify(parsed, "hello"u8, result.Signature, result.PublicKey));
        Assert.False(GuestKeyDerivation.Verify(parsed, "hellp"u8, result.Signature, result.PublicKey));
    }

    [Fact]
    public void Sign_Prehashed_EqualsSignOverSha256()
    {
        using var keys = SimulatorAppKeys();
        var derivation = new GuestKeyDerivation(keys);
        var plain = derivation.Sign(SignatureAlgorithmKind.Secp256k1, "hello"u8);
        var prehashed = derivation.Sign(SignatureAlgorithmKind.Secp256k1Prehashed, SHA256.HashData("hello"u8));
        Assert.Equal(plain.Signature, prehashed.Signature);
        Assert.Throws<ArgumentException>(() => derivation.Sign(SignatureAlgorithmKind.Secp256k1Prehashed, "short"u8));
    }

    [Fact]
    public void TappdDeriveKey_MatchesDstackScalarAndPem()
    {
        using var keys = SimulatorAppKeys();
        using var key = new GuestKeyDerivation(keys).DeriveP256("/");

        Assert.Equal("082d197907da848f8095f86c3a723bf75a082e97723e000fe3dffbf08b958ea8", Convert.ToHexStringLower(DstackKdf.P256Scalar(key)));
        var pem = DstackKdf.ToPkcs8Pem(key);
        Assert.Equal(
            "-----BEGIN PRIVATE KEY-----\n"
            + "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCC0ZeQfahI+Alfhs\n"
            + "OnI791oILpdyPgAP49/78IuVjqihRANCAAROJ5YaGXbk2cVtIVNruwbKX3QIdvip\n"
            + "goeVxXbdhXuZr/YNBj5xYUeFi9TKZBUEKqDl1rZRDB9UGcJ2KCr8C4W1\n"
            + "-----END PRIVATE KEY-----\n",
            pem);
    }

    [Fact]
    public void DeriveDhSecret_MatchesDstackRegressionVector()
    {
        using var root = ECDsa.Create();
        root.ImportPkcs8PrivateKey(Convert.FromHexString(TestRootCaDer), out _);
        Assert.Equal(TestRootCaDer, Convert.ToHexStringLower(root.ExportPkcs8PrivateKey()));

        var secret = DstackKdf.DeriveDhSecret(DstackKdf.P256Scalar(root), "context one"u8.ToArray(), "context two"u8.ToArray());
        Assert.Equal("663afd58820be8ad645f9c035e93199d114ab16f738db62393bc1d7d623e8813", Convert.ToHexStringLower(secret));
    }

    [Fact]
    public void KmsAppKeys_MatchDstackVectors()
    {
        var rootCa = Convert.FromHexString(TestRootCaScalar);
        var appId = Convert.FromHexString(SimulatorAppId);
        var instanceId = Convert.FromHexString(SimulatorInstanceId);

        Assert.Equal("536adff06967a03eb816df0387b9cc74bb6734daa2789e646e3cfa5ee2ffd101", Convert.ToHexStringLower(AppKeyDerivation.DiskCryptKey(rootCa, appId, instanceId)));
        Assert.Equal("226c77f981e1a9fbd28bc4088a75cd05205f9ff2f5f5d56bd5b14b7888c4433b", Convert.ToHexStringLower(AppKeyDerivation.EnvCryptKey(rootCa, appId)));
        using (var appCa = AppKeyDerivation.AppCaKey(rootCa, appId))
        {
            Assert.Equal("b2957168de447fda8f5bc70d4cfba82b8d880f092def4b3113ab75a2e05e1b59", Convert.ToHexStringLower(DstackKdf.P256Scalar(appCa)));
        }

        Assert.Equal("03b776f02b75cc0cffff272aa59d46200aa867ac3017e4885d25fa051149c5de25", Convert.ToHexStringLower(Secp256k1.CompressedPublicKey(TestRootK256)));
        var appK256 = AppKeyDerivation.AppK256Key(TestRootK256, appId);
        Assert.Equal("351a0546d0144dc8492803e3373af57f656aa900ce8d78a05b4aa92bc2f90a38", Convert.ToHexStringLower(appK256));
        var appPub = Secp256k1.CompressedPublicKey(appK256);
        Assert.Equal("03ba7ee83ac2259578b2f0c30498f49734a9a30721493a6147aac858f2c471fc8d", Convert.ToHexStringLower(appPub));
        Assert.Equal(
            "65e4c16c2b1989879a58d441508a19feef9267980411c659c44f573d5591eaee7b517bfaf1386b261eaef1cf6f56a52e31f87e0775dbaa2c3816aa8e469dce0001",
            Convert.ToHexStringLower(AppKeyDerivation.K256Signature(TestRootK256, appId, appPub)));
    }

    [Fact]
    public void Rfc6979SanityVector()
    {
        // A14: secp256k1, d = 1, SHA-256("Satoshi Nakamoto").
        var d = new byte[32];
        d[31] = 1;
        var signature = Secp256k1.SignRecoverable(d, SHA256.HashData("Satoshi Nakamoto"u8));
        Assert.Equal(
            "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d82442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e501",
            Convert.ToHexStringLower(signature));
    }

    [Theory]
    [InlineData("sha512", "7ea0b744ed5e9c0c83ff9f575668e1697652cd349f2027cdf26f918d4c53e8cd50b5ea9b449b4c3d50e20ae00ec29688d5a214e8daff8a10041f5d624dae8a01")]
    [InlineData("sha256", "278fdb367382d9d10871ebb44498a29d54e705fa8924ce0a6fe8629542fc1a65")]
    [InlineData("keccak256", "71d9e489e5d4046e8c1a5ef5137a88d940c77db95de9a5eadcde469c4fc50c29")]
    [InlineData("sha3-256", "bb98d4376d590cb17968d89250ac8f3d6241c9267d74995121a60766d0a6c665")]
    [InlineData("sha384", "3967015e6798cc3d90f60b0a8dd045856e33273c4118dcdf04cc40a051ef8f3c008c73fb6e89d0af961c91a3a73efc5e")]
    public void TappdHashes_MatchDstack(string algorithm, string expected)
    {
        Assert.Equal(expected, Convert.ToHexStringLower(Hashes.ByDstackName(algorithm, "app-data:test content"u8)!));
    }

    [Fact]
    public void Keccak256_OfEmpty() =>
        Assert.Equal("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470", Convert.ToHexStringLower(Hashes.Keccak256([])));

    internal static AppKeys SimulatorAppKeys()
    {
        var caKey = LocalKeyProvider.NewP256(RandomNumberGenerator.Create());
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=test", caKey, HashAlgorithmName.SHA256);
        var caCert = request.CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));
        return new AppKeys(
            Convert.FromHexString(SimulatorAppId),
            Convert.FromHexString(SimulatorK256Key),
            Convert.FromHexString(SimulatorK256Signature),
            new byte[32],
            new byte[32],
            caKey,
            caCert,
            [],
            "{\"name\":\"none\",\"id\":\"\"}");
    }
}
