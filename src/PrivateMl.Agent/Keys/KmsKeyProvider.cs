using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using PrivateMl.Agent.Certificates;

namespace PrivateMl.Agent.Keys;

/// <summary>
/// Key provider <c>kms</c>: app keys come from a KMS over RA-TLS, as dstack's <c>request_app_keys_from_kms_url</c>
/// fetches them (dstack.md §9.6): <c>GetTempCaCert</c> (the KMS root and a temp CA), then a client certificate with
/// this CVM's quote and event log signed by the temp CA, then <c>GetAppKey</c> over mutual TLS whose server
/// certificate must chain to that root and carry usage <c>kms:rpc</c>. The <c>key-provider</c> event records
/// <c>{"name":"kms","id":"&lt;root CA SPKI hex&gt;"}</c>, so the KMS this CVM trusts is part of its measured identity.
/// </summary>
public sealed class KmsKeyProvider : IKeyProvider, IDisposable
{
    private readonly Uri _kmsUrl;
    private readonly RaTlsQuoteSource _quotes;
    private readonly string _vmConfig;
    private readonly TimeProvider _timeProvider;
    private readonly RandomNumberGenerator _random;
    private readonly string? _expectedRootSpki;
    private readonly uint? _epoch;
    private readonly TimeSpan _timeout;
    private X509Certificate2? _rootCa;
    private string? _tempCaCertPem;
    private string? _tempCaKeyPem;
    private string? _info;

    /// <param name="kmsUrl">KMS base URL (<c>https://host:port</c>, with or without <c>/prpc</c>).</param>
    /// <param name="quotes">Where this CVM's quotes come from (with the event log current at the time).</param>
    /// <param name="vmConfig">The <c>vm_config</c> JSON sent with <c>GetAppKey</c>.</param>
    /// <param name="timeProvider">Clock for the client certificate's validity.</param>
    /// <param name="random">Randomness for the client certificate key.</param>
    /// <param name="expectedRootSpkiHex">When set, the KMS root CA's SPKI (hex) must equal it (a pinned KMS).</param>
    /// <param name="epoch">Key epoch to ask for; null for the KMS's current epoch.</param>
    /// <param name="timeout">Bound on each KMS request (default 30 s; a software-emulated guest needs longer).</param>
    public KmsKeyProvider(
        Uri kmsUrl,
        RaTlsQuoteSource quotes,
        string vmConfig,
        TimeProvider timeProvider,
        RandomNumberGenerator random,
        string? expectedRootSpkiHex = null,
        uint? epoch = null,
        TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(kmsUrl);
        ArgumentNullException.ThrowIfNull(quotes);
        ArgumentNullException.ThrowIfNull(vmConfig);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(random);
        _kmsUrl = kmsUrl;
        _quotes = quotes;
        _vmConfig = vmConfig;
        _timeProvider = timeProvider;
        _random = random;
        _expectedRootSpki = expectedRootSpkiHex?.ToLowerInvariant();
        _epoch = epoch;
        _timeout = timeout ?? new KmsClientOptions().Timeout;
    }

    public string Name => "kms";

    public string KeyProviderInfo => _info ?? throw new InvalidOperationException("the KMS key provider has not been initialised");

    /// <summary>The KMS root CA (after <see cref="InitializeAsync"/>).</summary>
    public X509Certificate2? RootCaCertificate => _rootCa;

    /// <summary>The key epoch of the latest keys received.</summary>
    public uint? Epoch { get; private set; }

    public async ValueTask InitializeAsync(CancellationToken cancellationToken = default)
    {
        if (_info is not null)
        {
            return;
        }

        using var client = new KmsClient(_kmsUrl, new KmsClientOptions { Timeout = _timeout });
        var (tempCert, tempKey, caPem) = await client.GetTempCaCertAsync(cancellationToken).ConfigureAwait(false);
        X509Certificate2 root;
        try
        {
            root = X509Certificate2.CreateFromPem(caPem);
        }
        catch (CryptographicException e)
        {
            throw new KmsClientException("the KMS root CA certificate is not PEM", null, e);
        }

        var spki = Convert.ToHexStringLower(root.PublicKey.ExportSubjectPublicKeyInfo());
        if (_expectedRootSpki is not null && !CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.ASCII.GetBytes(spki), System.Text.Encoding.ASCII.GetBytes(_expectedRootSpki)))
        {
            root.Dispose();
            throw new KmsClientException($"the KMS at {_kmsUrl} has root CA key {spki}, not the pinned {_expectedRootSpki}");
        }

        _rootCa = root;
        _tempCaCertPem = tempCert;
        _tempCaKeyPem = tempKey;
        _info = $"{{\"name\":\"{Name}\",\"id\":\"{spki}\"}}";
    }

    public async ValueTask<AppKeys> GetAppKeysAsync(AppKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        var now = _timeProvider.GetUtcNow();
        var temp = KmsClient.LoadPemPair(_tempCaCertPem!, _tempCaKeyPem!);
        X509Certificate2 clientCertificate;
        using (temp.Certificate)
        using (temp.Key)
        {
            clientCertificate = await RaTlsCertificates.CreateClientAsync(
                _quotes, now, TimeSpan.FromMinutes(10), temp, _random, cancellationToken).ConfigureAwait(false);
        }

        using (clientCertificate)
        using (var client = new KmsClient(_kmsUrl, new KmsClientOptions { ClientCertificate = clientCertificate, TrustedRootCa = _rootCa, Timeout = _timeout }))
        using (var response = await client.CallAsync("GetAppKey", w =>
        {
            w.WriteNumber("api_version", 1);
            w.WriteString("vm_config", _vmConfig);
            if (_epoch is { } epoch)
            {
                w.WriteNumber("epoch", epoch);
            }
        }, cancellationToken).ConfigureAwait(false))
        {
            return ReadAppKeys(response.RootElement, request, now);
        }
    }

    public override string ToString() => $"KmsKeyProvider({_kmsUrl})";

    public void Dispose() => _rootCa?.Dispose();

    private AppKeys ReadAppKeys(JsonElement root, AppKeyRequest request, DateTimeOffset now)
    {
        var k256 = KmsClient.Hex(root, "k256_key");
        var disk = KmsClient.Hex(root, "disk_crypt_key");
        var env = KmsClient.Hex(root, "env_crypt_key");
        try
        {
            var signature = KmsClient.Hex(root, "k256_signature");
            if (!Secp256k1.IsValidPrivateKey(k256) || signature.Length != Secp256k1.RecoverableSignatureSize || disk.Length != 32 || env.Length != 32)
            {
                throw new KmsClientException("the KMS sent app keys of the wrong size");
            }

            if (root.TryGetProperty("epoch", out var epoch) && epoch.TryGetUInt32(out var e))
            {
                Epoch = e;
            }

            // The app CA that signs this CVM's TLS certificates: derived from the app key, so it is stable per app
            // and epoch (dstack KMS-mode CVMs obtain theirs through SignCert instead).
            var caKey = DstackKdf.DeriveP256(k256, "app-ca"u8.ToArray());
            var caCertificate = CertificateFactory.CreateRootCa(caKey, "Dstack", "Dstack App CA", now.AddYears(10));
            return new AppKeys(request.AppId.Span, k256, signature, disk, env, caKey, caCertificate, [_rootCa!], KeyProviderInfo);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(k256);
            CryptographicOperations.ZeroMemory(disk);
            CryptographicOperations.ZeroMemory(env);
        }
    }
}
