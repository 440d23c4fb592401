using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using PrivateMl.Agent.Certificates;

namespace PrivateMl.Agent.Keys;

/// <summary>
/// Key provider backed by root keys kept in the agent's state directory (files mode 0600): <c>root-k256.key</c>
/// (raw 32-byte secp256k1 scalar, as dstack's KMS stores it), <c>root-ca.key</c> (P-256 PKCS#8 PEM) and
/// <c>root-ca.crt</c>. App keys are derived with the KMS formulas, so a KMS holding the same roots issues the same
/// keys. Created on first use; a restart keeps the identity.
/// </summary>
public sealed class LocalKeyProvider : IKeyProvider, IDisposable
{
    public const string RootK256File = "root-k256.key";
    public const string RootCaKeyFile = "root-ca.key";
    public const string RootCaCertificateFile = "root-ca.crt";

    private readonly byte[] _rootK256;
    private readonly byte[] _rootCaScalar;
    private readonly X509Certificate2 _rootCaCertificate;
    private readonly TimeProvider _timeProvider;

    private LocalKeyProvider(byte[] rootK256, byte[] rootCaScalar, X509Certificate2 rootCaCertificate, TimeProvider timeProvider)
    {
        _rootK256 = rootK256;
        _rootCaScalar = rootCaScalar;
        _rootCaCertificate = rootCaCertificate;
        _timeProvider = timeProvider;
        KeyProviderInfo = $"{{\"name\":\"{Name}\",\"id\":\"{Convert.ToHexStringLower(rootCaCertificate.PublicKey.ExportSubjectPublicKeyInfo())}\"}}";
    }

    public string Name => "local";

    public string KeyProviderInfo { get; }

    /// <summary>Compressed public key of the root k256 key (what a client compares the recovered chain root with).</summary>
    public byte[] RootK256PublicKey => Secp256k1.CompressedPublicKey(_rootK256);

    public X509Certificate2 RootCaCertificate => _rootCaCertificate;

    /// <summary>Opens the roots in <paramref name="stateDirectory"/>, creating them with <paramref name="random"/> when absent.</summary>
    public static LocalKeyProvider OpenOrCreate(string stateDirectory, RandomNumberGenerator random, TimeProvider timeProvider)
    {
        Directory.CreateDirectory(stateDirectory);
        var k256Path = Path.Combine(stateDirectory, RootK256File);
        var caKeyPath = Path.Combine(stateDirectory, RootCaKeyFile);
        var caCertPath = Path.Combine(stateDirectory, RootCaCertificateFile);

        if (!File.Exists(k256Path))
        {
            var scalar = new byte[32];
            do
            {
                random.GetBytes(scalar);
            }
            while (!Secp256k1.IsValidPrivateKey(scalar));

            WriteSecret(k256Path, scalar);
            CryptographicOperations.ZeroMemory(scalar);
        }

        if (!File.Exists(caKeyPath) || !File.Exists(caCertPath))
        {
            using var key = NewP256(random);
            WriteSecret(caKeyPath, Encoding.ASCII.GetBytes(DstackKdf.ToPkcs8Pem(key)));
            var notAfter = timeProvider.GetUtcNow().AddYears(100);
            using var certificate = CertificateFactory.CreateRootCa(key, "PrivateMl", "PrivateMl Local Key Provider CA", notAfter);
            File.WriteAllText(caCertPath, CertificateFactory.ToPem(certificate));
        }

        var rootK256 = File.ReadAllBytes(k256Path);
        if (!Secp256k1.IsValidPrivateKey(rootK256))
        {
            throw new InvalidDataException($"{k256Path} does not hold a 32-byte secp256k1 scalar");
        }

        using var caKey = ECDsa.Create();
        caKey.ImportFromPem(File.ReadAllText(caKeyPath));
        var caScalar = DstackKdf.P256Scalar(caKey);
        var caCertificate = X509Certificate2.CreateFromPem(File.ReadAllText(caCertPath));
        if (!caCertificate.PublicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(caKey.ExportSubjectPublicKeyInfo()))
        {
            throw new InvalidDataException($"{caCertPath} does not match {caKeyPath}");
        }

        return new LocalKeyProvider(rootK256, caScalar, caCertificate, timeProvider);
    }

    public ValueTask<AppKeys> GetAppKeysAsync(AppKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ValueTask.FromResult(AppKeyDerivation.Derive(
            _rootCaScalar, _rootCaCertificate, _rootK256, request, KeyProviderInfo, _timeProvider.GetUtcNow()));
    }

    public override string ToString() => $"LocalKeyProvider({KeyProviderInfo})";

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_rootK256);
        CryptographicOperations.ZeroMemory(_rootCaScalar);
        _rootCaCertificate.Dispose();
    }

    internal static ECDsa NewP256(RandomNumberGenerator random)
    {
        var scalar = new byte[32];
        try
        {
            while (true)
            {
                random.GetBytes(scalar);
                try
                {
                    return DstackKdf.P256FromScalar(scalar);
                }
                catch (CryptographicException)
                {
                    // Out of range (0 or ≥ n): draw again.
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scalar);
        }
    }

    private static void WriteSecret(string path, byte[] content)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using var stream = new FileStream(path, options);
        stream.Write(content);
    }
}
