using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;

namespace PrivateMl.Kms.Keys;

/// <summary>
/// The KMS root material in its state directory, in dstack's file layout (dstack.md §5.2; every file mode 0600):
/// <c>root-ca.key</c> (P-256 PKCS#8 PEM) with <c>root-ca.crt</c>, <c>root-k256.key</c> (raw 32-byte secp256k1
/// scalar) and the temp CA <c>tmp-ca.key</c>/<c>tmp-ca.crt</c> whose key is handed out by <c>GetTempCaCert</c>.
/// The env-encryption root is the root CA key, as in dstack (a separate root would change every env key).
/// Created on first start, reloaded on restart, replaced only by onboarding into an empty directory.
/// </summary>
public sealed class KmsRootKeys : IDisposable
{
    public const string RootCaKeyFile = "root-ca.key";
    public const string RootCaCertificateFile = "root-ca.crt";
    public const string RootK256File = "root-k256.key";
    public const string TempCaKeyFile = "tmp-ca.key";
    public const string TempCaCertificateFile = "tmp-ca.crt";

    /// <summary>The first key epoch: its keys are exactly dstack's.</summary>
    public const uint FirstEpoch = 1;

    /// <summary>notAfter of the root CA certificate (fixed, so every replica writes the same validity).</summary>
    private static readonly DateTimeOffset RootNotAfter = new(9999, 12, 31, 23, 59, 59, TimeSpan.Zero);

    private readonly byte[] _caScalar;
    private readonly byte[] _k256;

    private KmsRootKeys(byte[] caScalar, byte[] k256, X509Certificate2 rootCa, string tempCaCertificatePem, string tempCaKeyPem)
    {
        _caScalar = caScalar;
        _k256 = k256;
        RootCaCertificate = rootCa;
        RootCaSpki = rootCa.PublicKey.ExportSubjectPublicKeyInfo();
        K256PublicKey = Secp256k1.CompressedPublicKey(k256);
        TempCaCertificatePem = tempCaCertificatePem;
        TempCaKeyPem = tempCaKeyPem;
    }

    public X509Certificate2 RootCaCertificate { get; }

    /// <summary>SubjectPublicKeyInfo DER of the root CA key (the <c>id</c> of a CVM's <c>key-provider</c> event).</summary>
    public byte[] RootCaSpki { get; }

    /// <summary>Compressed (33-byte) public key of the root k256 key (<c>GetMeta.k256_pubkey</c>).</summary>
    public byte[] K256PublicKey { get; }

    public string RootCaPem => CertificateFactory.ToPem(RootCaCertificate);

    public string TempCaCertificatePem { get; }

    /// <summary>The temp CA key: public by design (dstack hands it out); trust comes from the quote in client certificates.</summary>
    public string TempCaKeyPem { get; }

    /// <summary>The <c>key-provider</c> payload a CVM using this KMS measures: <c>{"name":"kms","id":"&lt;SPKI hex&gt;"}</c>.</summary>
    public string KeyProviderInfo => $"{{\"name\":\"kms\",\"id\":\"{Convert.ToHexStringLower(RootCaSpki)}\"}}";

    internal ReadOnlySpan<byte> RootK256 => _k256;

    internal ReadOnlySpan<byte> RootCaScalar => _caScalar;

    /// <summary>True when <paramref name="directory"/> holds root keys.</summary>
    public static bool Exists(string directory) =>
        File.Exists(Path.Combine(directory, RootCaKeyFile)) && File.Exists(Path.Combine(directory, RootK256File));

    /// <summary>Opens the roots in <paramref name="directory"/>, creating them with <paramref name="random"/> when absent.</summary>
    public static KmsRootKeys OpenOrCreate(string directory, RandomNumberGenerator random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (!Exists(directory))
        {
            using var ca = LocalKeyProvider.NewP256(random);
            var k256 = new byte[32];
            do
            {
                random.GetBytes(k256);
            }
            while (!Secp256k1.IsValidPrivateKey(k256));

            try
            {
                Write(directory, DstackKdf.ToPkcs8Pem(ca), k256, random);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(k256);
            }
        }

        return Open(directory);
    }

    /// <summary>
    /// Writes root keys received from another KMS (onboarding) into an empty directory and opens them. The root CA
    /// certificate is re-issued from the key; its public key, and so every derived key, is the source's.
    /// </summary>
    public static KmsRootKeys Import(string directory, string rootCaKeyPem, ReadOnlySpan<byte> rootK256, RandomNumberGenerator random)
    {
        if (Exists(directory))
        {
            throw new InvalidOperationException($"{directory} already holds KMS root keys; onboarding needs an empty state directory");
        }

        if (!Secp256k1.IsValidPrivateKey(rootK256))
        {
            throw new ArgumentException("the root k256 key is not a secp256k1 scalar", nameof(rootK256));
        }

        Write(directory, rootCaKeyPem, rootK256, random);
        return Open(directory);
    }

    public static KmsRootKeys Open(string directory)
    {
        var k256 = File.ReadAllBytes(Path.Combine(directory, RootK256File));
        if (!Secp256k1.IsValidPrivateKey(k256))
        {
            throw new InvalidDataException($"{RootK256File} in {directory} does not hold a 32-byte secp256k1 scalar");
        }

        using var caKey = ECDsa.Create();
        caKey.ImportFromPem(File.ReadAllText(Path.Combine(directory, RootCaKeyFile)));
        var rootCa = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(directory, RootCaCertificateFile)));
        if (!rootCa.PublicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(caKey.ExportSubjectPublicKeyInfo()))
        {
            rootCa.Dispose();
            throw new InvalidDataException($"{RootCaCertificateFile} does not match {RootCaKeyFile} in {directory}");
        }

        return new KmsRootKeys(
            DstackKdf.P256Scalar(caKey),
            k256,
            rootCa,
            File.ReadAllText(Path.Combine(directory, TempCaCertificateFile)),
            File.ReadAllText(Path.Combine(directory, TempCaKeyFile)));
    }

    /// <summary>Root keys held in memory only (test vectors, benchmarks): the given scalars, fresh certificates.</summary>
    internal static KmsRootKeys FromScalars(ReadOnlySpan<byte> rootCaScalar, ReadOnlySpan<byte> rootK256, RandomNumberGenerator random)
    {
        if (!Secp256k1.IsValidPrivateKey(rootK256))
        {
            throw new ArgumentException("the root k256 key is not a secp256k1 scalar", nameof(rootK256));
        }

        using var ca = DstackKdf.P256FromScalar(rootCaScalar);
        using var temp = LocalKeyProvider.NewP256(random);
        using var tempCa = CertificateFactory.CreateRootCa(temp, "PrivateMl", "PrivateMl KMS Client Temp CA", RootNotAfter);
        return new KmsRootKeys(
            rootCaScalar.ToArray(),
            rootK256.ToArray(),
            CertificateFactory.CreateRootCa(ca, "PrivateMl", "PrivateMl KMS CA", RootNotAfter),
            CertificateFactory.ToPem(tempCa),
            DstackKdf.ToPkcs8Pem(temp));
    }

    /// <summary>A new instance of the root CA private key (caller disposes).</summary>
    public ECDsa CreateRootCaKey() => DstackKdf.P256FromScalar(_caScalar);

    /// <summary>The root CA key as PKCS#8 PEM (for onboarding a replica over attested TLS only).</summary>
    internal string ExportRootCaKeyPem()
    {
        using var key = CreateRootCaKey();
        return DstackKdf.ToPkcs8Pem(key);
    }

    /// <summary>
    /// The IKM an epoch's keys derive from: the root itself for epoch 1 (dstack's exact keys); for epoch e ≥ 2,
    /// HKDF(root, ["privateml-kms-epoch:", u32_be(e)]) — the epoch is part of the derivation context.
    /// </summary>
    public static byte[] EpochRoot(ReadOnlySpan<byte> root, uint epoch)
    {
        if (epoch < FirstEpoch)
        {
            throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "epochs start at 1");
        }

        if (epoch == FirstEpoch)
        {
            return root.ToArray();
        }

        var number = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(number, epoch);
        return DstackKdf.DeriveKey(root, "privateml-kms-epoch:"u8.ToArray(), number);
    }

    /// <summary>
    /// dstack's <c>GetAppKey</c> keys (dstack.md §5.3) for one app in one epoch. The k256 signature is always made by
    /// the root k256 key itself, so <c>GetMeta.k256_pubkey</c> verifies the chain in every epoch.
    /// </summary>
    public KmsAppKeys DeriveAppKeys(ReadOnlySpan<byte> appId, ReadOnlySpan<byte> instanceId, uint epoch)
    {
        var caRoot = EpochRoot(_caScalar, epoch);
        var k256Root = EpochRoot(_k256, epoch);
        try
        {
            var k256 = AppKeyDerivation.AppK256Key(k256Root, appId);
            var signature = AppKeyDerivation.K256Signature(_k256, appId, Secp256k1.CompressedPublicKey(k256));
            return new KmsAppKeys(
                epoch,
                k256,
                signature,
                AppKeyDerivation.DiskCryptKey(caRoot, appId, instanceId),
                AppKeyDerivation.EnvCryptKey(caRoot, appId));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(caRoot);
            CryptographicOperations.ZeroMemory(k256Root);
        }
    }

    /// <summary>
    /// The app CA that signs an app's certificates in <paramref name="epoch"/> (dstack.md §5.3: P-256 key
    /// <c>derive_ecdsa_key_pair(root_ca_key, [app_id, "app-ca"])</c>, pathLen 0, usage <c>app:ca</c>, issued by the root CA).
    /// </summary>
    public (X509Certificate2 Certificate, ECDsa Key) CreateAppCa(ReadOnlySpan<byte> appId, uint epoch, DateTimeOffset now)
    {
        var caRoot = EpochRoot(_caScalar, epoch);
        try
        {
            var key = AppKeyDerivation.AppCaKey(caRoot, appId);
            using var rootKey = CreateRootCaKey();
            return (CertificateFactory.CreateAppCa(key, appId, RootCaCertificate, rootKey, now.AddYears(10)), key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(caRoot);
        }
    }

    /// <summary>The app's env-encryption private key (X25519 scalar bytes) in <paramref name="epoch"/>.</summary>
    public byte[] EnvCryptKey(ReadOnlySpan<byte> appId, uint epoch)
    {
        var caRoot = EpochRoot(_caScalar, epoch);
        try
        {
            return AppKeyDerivation.EnvCryptKey(caRoot, appId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(caRoot);
        }
    }

    public override string ToString() => $"KmsRootKeys(ca={Convert.ToHexStringLower(SHA256.HashData(RootCaSpki))[..16]}…, k256={Convert.ToHexStringLower(K256PublicKey)})";

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_caScalar);
        CryptographicOperations.ZeroMemory(_k256);
        RootCaCertificate.Dispose();
    }

    private static void Write(string directory, string rootCaKeyPem, ReadOnlySpan<byte> k256, RandomNumberGenerator random)
    {
        Directory.CreateDirectory(directory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        using var ca = ECDsa.Create();
        ca.ImportFromPem(rootCaKeyPem);
        using var rootCa = CertificateFactory.CreateRootCa(ca, "PrivateMl", "PrivateMl KMS CA", RootNotAfter);
        using var temp = LocalKeyProvider.NewP256(random);
        using var tempCa = CertificateFactory.CreateRootCa(temp, "PrivateMl", "PrivateMl KMS Client Temp CA", RootNotAfter);

        // Keys last, k256 very last: Exists() sees a complete set or none.
        WriteSecret(Path.Combine(directory, RootCaCertificateFile), Encoding.ASCII.GetBytes(CertificateFactory.ToPem(rootCa)));
        WriteSecret(Path.Combine(directory, TempCaCertificateFile), Encoding.ASCII.GetBytes(CertificateFactory.ToPem(tempCa)));
        WriteSecret(Path.Combine(directory, TempCaKeyFile), Encoding.ASCII.GetBytes(DstackKdf.ToPkcs8Pem(temp)));
        WriteSecret(Path.Combine(directory, RootCaKeyFile), Encoding.ASCII.GetBytes(DstackKdf.ToPkcs8Pem(ca)));
        WriteSecret(Path.Combine(directory, RootK256File), k256.ToArray());
    }

    internal static void WriteSecret(string path, byte[] content)
    {
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(path, options))
        {
            stream.Write(content);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}

/// <summary>
/// One app's keys in one epoch (dstack's <c>AppKeyResponse</c> secrets). Holds secrets: <see cref="ToString"/> shows
/// only the epoch; <see cref="Dispose"/> clears them.
/// </summary>
public sealed class KmsAppKeys(uint epoch, byte[] k256Key, byte[] k256Signature, byte[] diskCryptKey, byte[] envCryptKey) : IDisposable
{
    public uint Epoch { get; } = epoch;

    public byte[] K256Key { get; } = k256Key;

    public byte[] K256Signature { get; } = k256Signature;

    public byte[] DiskCryptKey { get; } = diskCryptKey;

    public byte[] EnvCryptKey { get; } = envCryptKey;

    public override string ToString() => $"KmsAppKeys(epoch={Epoch})";

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(K256Key);
        CryptographicOperations.ZeroMemory(DiskCryptKey);
        CryptographicOperations.ZeroMemory(EnvCryptKey);
    }
}
