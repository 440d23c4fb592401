using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;
using PrivateMl.Agent.Client;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Client;
using PrivateMl.E2ee.Signing;
using PrivateMl.Gateway;
using PrivateMl.Kms.Hosting;
using PrivateMl.Kms.Policy;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;
using PrivateMl.Vmm.DevImage;
using ECPrivKey = NBitcoin.Secp256k1.ECPrivKey;

namespace PrivateMl.EndToEnd.Tests.Support;

/// <summary>
/// One simulated deployment in a temporary folder: the image's SIMULATED TDX platform (build-dev's
/// <c>&lt;image&gt;/tdx-simulator</c>), a KMS in a TD of that platform, a real OpenAI-shaped model server on loopback,
/// and the host's side of deploying guests (the shared folder with app-compose.json, <c>.sys-config.json</c>'s
/// <c>kms_urls</c>, <c>.instance_info</c> and an env encrypted to the KMS's key for the app).
/// </summary>
internal sealed class SimulatedDeployment : IAsyncDisposable
{
    public const string Model = "test-model";

    /// <summary>What the model server streams as content (<see cref="FakeUpstream.Tokens"/> deltas); its non-streamed answer is <see cref="Answer"/>.</summary>
    public static readonly string StreamedContent = string.Concat(Enumerable.Range(0, FakeUpstream.Tokens).Select(i => $"tok{i} "));

    public const string Answer = "hello there";

    /// <summary>The path prefix under which the gateway asks the agent for its signing keys (GatewayOptions' default).</summary>
    public static readonly string GatewayKeyPath = new GatewayOptions().KeyPathPrefix;

    private readonly string _root;
    private readonly SimulatedTdxPlatform _platform;
    private readonly List<KmsNode> _otherKms = [];
    private int _guests;

    private SimulatedDeployment(string root, SimulatedTdxPlatform platform, FakeUpstream upstream, KmsNode kms, KmsPolicy policy)
    {
        _root = root;
        _platform = platform;
        Upstream = upstream;
        Kms = kms;
        Policy = policy;
    }

    public FakeUpstream Upstream { get; }

    public KmsNode Kms { get; private set; }

    public KmsPolicy Policy { get; private set; }

    public string ImageSimulator => ImageSimulatorOf(_root);

    /// <summary>A path inside this deployment's temporary folder.</summary>
    public string PathOf(string name) => Path.Combine(_root, name);

    /// <summary>The KMS's state directory (root keys, <c>epochs.json</c>), where <c>privateml kms rotate</c> acts.</summary>
    public string KmsState => Path.Combine(_root, "kms");

    private static string ImageSimulatorOf(string root) => Path.Combine(root, "image", "tdx-simulator");

    /// <summary>Prepares the image's platform, starts the model server and a KMS with <paramref name="policy"/> (default: dstack's dev auth, any app).</summary>
    public static async Task<SimulatedDeployment> StartAsync(KmsPolicy? policy = null)
    {
        var ct = TestContext.Current.CancellationToken;
        var root = Directory.CreateTempSubdirectory("pml-e2e-").FullName;
        DevSimulator.Prepare(ImageSimulatorOf(root));
        var platform = SimulatedTdxPlatform.Load(ImageSimulatorOf(root));
        var upstream = await FakeUpstream.StartAsync();
        policy ??= KmsPolicy.Default;
        var kms = await KmsNode.StartAsync(ImageSimulatorOf(root), Path.Combine(root, "kms"), policy, ct);
        return new SimulatedDeployment(root, platform, upstream, kms, policy);
    }

    /// <summary>app-compose.json of a KMS app named <paramref name="name"/> that keeps <paramref name="allowedEnvs"/> from its encrypted env.</summary>
    public static string Compose(string name, params string[] allowedEnvs) =>
        $"{{\"manifest_version\":2,\"name\":\"{name}\",\"runner\":\"docker-compose\",\"docker_compose_file\":\"\",\"kms_enabled\":true,"
        + $"\"allowed_envs\":[{string.Join(',', allowedEnvs.Select(e => $"\"{e}\""))}]}}";

    /// <summary>The app id dstack gives a compose by default: the first 20 bytes of its SHA-256.</summary>
    public static byte[] AppIdOf(string compose) => SHA256.HashData(Encoding.UTF8.GetBytes(compose))[..20];

    /// <summary>
    /// Deploys and boots a guest: writes the shared folder (<paramref name="compose"/>, the KMS URLs — this deployment's
    /// KMS unless <paramref name="kmsUrls"/> says otherwise —, <paramref name="appId"/> in <c>.instance_info</c> when
    /// given, and <paramref name="encryptedEnv"/>) in <paramref name="guestDirectory"/> (default: a fresh one), then
    /// boots it as <c>privateml guest boot</c> does.
    /// </summary>
    /// <exception cref="GuestBootException">The guest refused to boot.</exception>
    public Task<GuestNode> BootAsync(string compose, IReadOnlyList<Uri>? kmsUrls = null, byte[]? appId = null, byte[]? encryptedEnv = null, string? guestDirectory = null)
    {
        var guest = guestDirectory ?? GuestDirectory();
        var shared = Path.Combine(guest, "shared");
        Directory.CreateDirectory(shared);
        File.WriteAllText(Path.Combine(shared, GuestSharedFolder.AppComposeFile), compose);
        var urls = kmsUrls ?? [Kms.Url];
        File.WriteAllText(Path.Combine(shared, GuestSharedFolder.SysConfigFile), $"{{\"kms_urls\":[{string.Join(',', urls.Select(u => $"\"{u}\""))}]}}");
        if (appId is not null)
        {
            File.WriteAllText(Path.Combine(shared, GuestSharedFolder.InstanceInfoFile), $"{{\"app_id\":\"{Convert.ToHexStringLower(appId)}\"}}");
        }

        if (encryptedEnv is not null)
        {
            File.WriteAllBytes(Path.Combine(shared, GuestSharedFolder.EncryptedEnvFile), encryptedEnv);
        }

        return GuestNode.BootAsync(shared, guest, ImageSimulator, Upstream.BaseAddress, TestContext.Current.CancellationToken);
    }

    /// <summary>Boots <paramref name="stopped"/>'s guest again from the same shared folder and disk (a VM restart: same instance).</summary>
    public Task<GuestNode> RebootAsync(GuestNode stopped) =>
        GuestNode.BootAsync(stopped.SharedDirectory, stopped.GuestDirectory, ImageSimulator, Upstream.BaseAddress, TestContext.Current.CancellationToken);

    /// <summary>A fresh folder for one guest (its shared folder, its agent state, its socket).</summary>
    public string GuestDirectory() => Directory.CreateDirectory(Path.Combine(_root, "guests", Interlocked.Increment(ref _guests).ToString(System.Globalization.CultureInfo.InvariantCulture))).FullName;

    /// <summary>
    /// The operator's side of <c>deploy --env-file</c>: the app's env-encryption key from the KMS, accepted only when
    /// signed by the KMS root key the operator pinned, and <paramref name="envFile"/> encrypted to it.
    /// </summary>
    public async Task<byte[]> EncryptEnvAsync(byte[] appId, string envFile)
    {
        var ct = TestContext.Current.CancellationToken;
        AppEnvEncryptPublicKey key;
        using (var client = new KmsClient(Kms.Url))
        using (var answer = await client.CallAsync("GetAppEnvEncryptPubKey", w => w.WriteString("app_id", Convert.ToHexStringLower(appId)), ct))
        {
            key = AppEnvEncryptPublicKey.Parse(Encoding.UTF8.GetBytes(answer.RootElement.GetRawText()));
        }

        var verdict = key.Verify(appId, [Convert.FromHexString(Kms.K256PublicKey)], DateTimeOffset.UtcNow);
        Assert.True(verdict.Accepted, verdict.Reason);
        using var random = RandomNumberGenerator.Create();
        return EncryptedEnv.Encrypt(EnvVariables.Serialize(EnvFile.Parse(envFile)), key.PublicKey, random);
    }

    /// <summary>Stops the KMS and starts it again over the same state (root keys), with <paramref name="policy"/> when given (an operator's policy change).</summary>
    public async Task RestartKmsAsync(KmsPolicy? policy = null)
    {
        await Kms.DisposeAsync();
        Policy = policy ?? Policy;
        Kms = await KmsNode.StartAsync(ImageSimulator, KmsState, Policy, TestContext.Current.CancellationToken);
    }

    /// <summary>
    /// A second KMS with root keys of its own (another operator's KMS), on the image's platform or, with
    /// <paramref name="simulatorDirectory"/>, in a TD of another simulated platform (one whose root it trusts instead).
    /// </summary>
    public async Task<KmsNode> StartOtherKmsAsync(KmsPolicy? policy = null, string? simulatorDirectory = null)
    {
        var kms = await KmsNode.StartAsync(simulatorDirectory ?? ImageSimulator, Path.Combine(_root, "kms-" + (_otherKms.Count + 1)), policy ?? KmsPolicy.Default, TestContext.Current.CancellationToken);
        _otherKms.Add(kms);
        return kms;
    }

    /// <summary>
    /// What a client verifying this deployment's nodes uses: SIMULATED evidence admitted explicitly, pinned to the
    /// image platform's root (not whatever root a quote carries), collateral that platform issues.
    /// </summary>
    public NodeVerifierOptions VerifierOptions(string? token = null, string signingAlgo = "ecdsa", string? expectedCompose = null) => new()
    {
        AllowSimulated = true,
        SimulatedRootCertificate = _platform.Pki.RootCertificate.RawData,
        Collateral = new SimulatedCollateralSource(_platform, TimeProvider.System),
        ApiKey = token,
        SigningAlgo = signingAlgo,
        ExpectedAppCompose = expectedCompose is null ? null : Encoding.UTF8.GetBytes(expectedCompose),
    };

    /// <summary>Attests <paramref name="node"/> once per signing algorithm (each run its own nonce); both must be trusted.</summary>
    public async Task<AttestedNode> AttestAsync(GuestNode node, string? expectedCompose = null)
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = new HttpClient();
        var ecdsa = await new NodeVerifier(http, VerifierOptions(expectedCompose: expectedCompose)).VerifyAsync(node.BaseAddress, ct);
        var ed25519 = await new NodeVerifier(http, VerifierOptions(signingAlgo: "ed25519", expectedCompose: expectedCompose)).VerifyAsync(node.BaseAddress, ct);
        Assert.True(ecdsa.Trusted, Describe.Checks(ecdsa));
        Assert.True(ed25519.Trusted, Describe.Checks(ed25519));
        return new AttestedNode(ecdsa, ed25519);
    }

    /// <summary>
    /// The gateway's signing keys as the agent derives them from the KMS's app key (GetKey over the agent socket,
    /// independently of the gateway): the ECDSA address (0x + lower-case hex; the report writes it EIP-55 checksummed,
    /// so compare ignoring case) and the Ed25519 public key (hex).
    /// </summary>
    public static async Task<(string EcdsaAddress, string Ed25519Key)> AgentDerivedSigningKeysAsync(GuestNode node)
    {
        var ct = TestContext.Current.CancellationToken;
        using var agent = new DstackAgentClient(node.AgentSocket);
        var ecdsa = await agent.GetKeyAsync(GatewayKeyPath + "/ecdsa-signing-key", "signing", "secp256k1", ct);
        var ed = await agent.GetKeyAsync(GatewayKeyPath + "/ed25519-signing-key", "signing", "secp256k1", ct);
        Assert.True(ECPrivKey.TryCreate(ecdsa.Key.AsSpan(0, 32), out var privateKey));
        using (privateKey)
        using (var edKey = Key.Import(SignatureAlgorithm.Ed25519, ed.Key.AsSpan(0, 32), KeyBlobFormat.RawPrivateKey))
        {
            var address = "0x" + Convert.ToHexStringLower(Eip191.AddressOf(privateKey!.CreatePubKey().ToBytes(compressed: false)));
            return (address, Convert.ToHexStringLower(edKey.PublicKey.Export(KeyBlobFormat.RawPublicKey)));
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var kms in _otherKms)
        {
            await kms.DisposeAsync();
        }

        await Kms.DisposeAsync();
        await Upstream.DisposeAsync();
        _platform.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A node attested for each of its signing keys: <see cref="Ecdsa"/>'s signing address is the Ethereum address, <see cref="Ed25519"/>'s the public key.</summary>
internal sealed record AttestedNode(NodeVerificationResult Ecdsa, NodeVerificationResult Ed25519)
{
    public byte[] AppId => Ecdsa.AppIdentity!.AppId!.Value.ToArray();

    public byte[] InstanceId => Ecdsa.AppIdentity!.InstanceId!.Value.ToArray();
}
