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
/// <remarks>
/// Several KMS URLs (<c>kms_urls</c>) are tried in order until one gives keys, as dstack-util's
/// <c>request_app_keys_from_kms</c> does: any failure of one URL — not reached, timed out, TLS refused, an HTTP error, a
/// refusal by its policy, an answer that is not well-formed — moves on to the next (dstack makes no exception for
/// refusals either: each KMS enforces its own policy). One difference follows from when the key provider is measured:
/// dstack measures it after the keys arrive, this agent measures it before <c>GetAppKey</c> (the root learnt from the
/// first KMS that answers <c>GetTempCaCert</c>), so a later URL is used for <c>GetAppKey</c> only when its root CA is the
/// one already measured (a replica). When every URL fails, the error names each URL and its reason (fail closed).
/// </remarks>
public sealed class KmsKeyProvider : IKeyProvider, IDisposable
{
    private readonly IReadOnlyList<Uri> _kmsUrls;
    private readonly RaTlsQuoteSource _quotes;
    private readonly string _vmConfig;
    private readonly TimeProvider _timeProvider;
    private readonly RandomNumberGenerator _random;
    private readonly string? _expectedRootSpki;
    private readonly uint? _epoch;
    private readonly TimeSpan _timeout;
    private readonly List<KmsAttempt> _initializeFailures = [];
    private int _current;
    private string? _rootSpki;
    private X509Certificate2? _rootCa;
    private string? _tempCaCertPem;
    private string? _tempCaKeyPem;
    private string? _info;

    /// <summary>The provider of one KMS at <paramref name="kmsUrl"/>; the other parameters as in the list constructor.</summary>
    public KmsKeyProvider(
        Uri kmsUrl,
        RaTlsQuoteSource quotes,
        string vmConfig,
        TimeProvider timeProvider,
        RandomNumberGenerator random,
        string? expectedRootSpkiHex = null,
        uint? epoch = null,
        TimeSpan? timeout = null)
        : this([kmsUrl ?? throw new ArgumentNullException(nameof(kmsUrl))], quotes, vmConfig, timeProvider, random, expectedRootSpkiHex, epoch, timeout)
    {
    }

    /// <param name="kmsUrls">KMS base URLs, tried in this order (at least one; each <c>https://host:port</c>, with or without <c>/prpc</c>).</param>
    /// <param name="quotes">Where this CVM's quotes come from (with the event log current at the time).</param>
    /// <param name="vmConfig">The <c>vm_config</c> JSON sent with <c>GetAppKey</c>.</param>
    /// <param name="timeProvider">Clock for the client certificate's validity.</param>
    /// <param name="random">Randomness for the client certificate key.</param>
    /// <param name="expectedRootSpkiHex">When set, the KMS root CA's SPKI (hex) must equal it (a pinned KMS); a KMS with another root counts as failed.</param>
    /// <param name="epoch">Key epoch to ask for; null for the KMS's current epoch.</param>
    /// <param name="timeout">Bound on each KMS request (default 30 s; a software-emulated guest needs longer).</param>
    public KmsKeyProvider(
        IReadOnlyList<Uri> kmsUrls,
        RaTlsQuoteSource quotes,
        string vmConfig,
        TimeProvider timeProvider,
        RandomNumberGenerator random,
        string? expectedRootSpkiHex = null,
        uint? epoch = null,
        TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(kmsUrls);
        ArgumentNullException.ThrowIfNull(quotes);
        ArgumentNullException.ThrowIfNull(vmConfig);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(random);
        if (kmsUrls.Count == 0 || kmsUrls.Any(u => u is null))
        {
            throw new ArgumentException("at least one KMS URL, and no null one, is required", nameof(kmsUrls));
        }

        _kmsUrls = [.. kmsUrls];
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

    /// <summary>The KMS URL in use: the one that answered <see cref="InitializeAsync"/>, then the one that gave the latest keys.</summary>
    public Uri? CurrentUrl => _info is null ? null : _kmsUrls[_current];

    /// <summary>The key epoch of the latest keys received.</summary>
    public uint? Epoch { get; private set; }

    /// <summary>The URLs tried before <see cref="CurrentUrl"/> gave the latest keys, each with why it gave none (as dstack-util warns of them).</summary>
    public IReadOnlyList<KmsAttempt> PassedOver { get; private set; } = [];

    /// <summary>Learns the KMS root (the key provider id) from the first URL that answers <c>GetTempCaCert</c> acceptably.</summary>
    /// <exception cref="KmsClientException">No URL answered (with several URLs, <see cref="KmsClientException.Attempts"/> says why for each).</exception>
    public async ValueTask InitializeAsync(CancellationToken cancellationToken = default)
    {
        if (_info is not null)
        {
            return;
        }

        _initializeFailures.Clear();
        for (var i = 0; i < _kmsUrls.Count; i++)
        {
            try
            {
                await ConnectAsync(i, cancellationToken).ConfigureAwait(false);
                _info = $"{{\"name\":\"{Name}\",\"id\":\"{_rootSpki}\"}}";
                return;
            }
            catch (KmsClientException e)
            {
                _initializeFailures.Add(new KmsAttempt(_kmsUrls[i], e));
            }
        }

        throw Failed(_initializeFailures);
    }

    /// <summary>
    /// <c>GetAppKey</c> from the KMS in use; when it fails, from each later URL whose root CA is the measured one, in order.
    /// </summary>
    /// <exception cref="KmsClientException">No URL gave keys (with several URLs, <see cref="KmsClientException.Attempts"/> says why for each, those that failed at start included).</exception>
    public async ValueTask<AppKeys> GetAppKeysAsync(AppKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        var failures = new List<KmsAttempt>(_initializeFailures);
        for (var i = _current; i < _kmsUrls.Count; i++)
        {
            try
            {
                if (i != _current)
                {
                    await ConnectAsync(i, cancellationToken).ConfigureAwait(false);
                }

                var keys = await GetAppKeysFromCurrentAsync(request, cancellationToken).ConfigureAwait(false);
                PassedOver = failures;
                return keys;
            }
            catch (KmsClientException e)
            {
                failures.Add(new KmsAttempt(_kmsUrls[i], e));
            }
        }

        throw Failed(failures);
    }

    /// <summary>
    /// <c>GetAppKey</c> for an earlier <paramref name="epoch"/> from the KMS in use, for what was sealed to it (an env
    /// encrypted before a rotation). <see cref="Epoch"/> keeps saying which epoch the app runs on.
    /// </summary>
    /// <exception cref="KmsClientException">The KMS refused (the epoch is retired or unknown) or could not be reached.</exception>
    public async ValueTask<AppKeys> GetAppKeysForEpochAsync(AppKeyRequest request, uint epoch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await InitializeAsync(cancellationToken).ConfigureAwait(false);
        return await GetAppKeysFromCurrentAsync(request, cancellationToken, epoch).ConfigureAwait(false);
    }

    private async Task<AppKeys> GetAppKeysFromCurrentAsync(AppKeyRequest request, CancellationToken cancellationToken, uint? earlierEpoch = null)
    {
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
        using (var client = new KmsClient(_kmsUrls[_current], new KmsClientOptions { ClientCertificate = clientCertificate, TrustedRootCa = _rootCa, Timeout = _timeout }))
        using (var response = await client.CallAsync("GetAppKey", w =>
        {
            w.WriteNumber("api_version", 1);
            w.WriteString("vm_config", _vmConfig);
            if ((earlierEpoch ?? _epoch) is { } epoch)
            {
                w.WriteNumber("epoch", epoch);
            }
        }, cancellationToken).ConfigureAwait(false))
        {
            return ReadAppKeys(response.RootElement, request, now, recordEpoch: earlierEpoch is null);
        }
    }

    /// <summary>
    /// <c>GetTempCaCert</c> from URL <paramref name="index"/>; its root CA must be the pinned one, and once a root is
    /// measured, that one. On success it becomes the KMS in use.
    /// </summary>
    private async Task ConnectAsync(int index, CancellationToken cancellationToken)
    {
        var url = _kmsUrls[index];
        using var client = new KmsClient(url, new KmsClientOptions { Timeout = _timeout });
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
        var required = _rootSpki ?? _expectedRootSpki;
        if (required is not null && !CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.ASCII.GetBytes(spki), System.Text.Encoding.ASCII.GetBytes(required)))
        {
            root.Dispose();
            throw new KmsClientException(_rootSpki is null
                ? $"the KMS at {url} has root CA key {spki}, not the pinned {_expectedRootSpki}"
                : $"the KMS at {url} has root CA key {spki}, not the KMS measured as this CVM's key provider ({_rootSpki})");
        }

        _rootCa?.Dispose();
        _rootCa = root;
        _rootSpki = spki;
        _tempCaCertPem = tempCert;
        _tempCaKeyPem = tempKey;
        _current = index;
    }

    /// <summary>One URL: its own error, as before several were supported; several: every URL and why.</summary>
    private KmsClientException Failed(List<KmsAttempt> failures) =>
        _kmsUrls.Count == 1 && failures.Count == 1 ? failures[0].Error : KmsClientException.NoKmsGaveKeys([.. failures]);

    public override string ToString() => $"KmsKeyProvider({string.Join(", ", _kmsUrls)})";

    public void Dispose() => _rootCa?.Dispose();

    private AppKeys ReadAppKeys(JsonElement root, AppKeyRequest request, DateTimeOffset now, bool recordEpoch)
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

            if (recordEpoch && root.TryGetProperty("epoch", out var epoch) && epoch.TryGetUInt32(out var e))
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
