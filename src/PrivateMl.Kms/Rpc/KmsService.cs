using System.Buffers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.RaTls;

namespace PrivateMl.Kms.Rpc;

/// <summary>A refused or malformed request: HTTP 400 with <c>{"error": "&lt;Code&gt;: &lt;reason&gt;", "code": "&lt;Code&gt;"}</c>.</summary>
public sealed class KmsRpcException(KmsRefusal refusal) : Exception(refusal.ToString())
{
    public KmsRefusal Refusal { get; } = refusal;

    public static KmsRpcException Invalid(string reason) => new(new KmsRefusal(ErrorCode.KmsRequestInvalid, reason));
}

/// <summary>
/// dstack's KMS methods (dstack.md §9.1) over this KMS's roots, epochs, verifier and policy. Each method takes the
/// parsed arguments and the TLS client certificate and returns the response JSON; a refusal is a
/// <see cref="KmsRpcException"/> with a 9xx code, logged before it is thrown. Thread-safe.
/// </summary>
public sealed class KmsService
{
    /// <summary>Methods that release keys and so need an RA-TLS client certificate.</summary>
    public static readonly IReadOnlySet<string> KeyMethods = new HashSet<string>(StringComparer.Ordinal) { "GetAppKey", "GetKmsKey" };

    private readonly KmsRootKeys _roots;
    private readonly KeyEpochStore _epochs;
    private readonly RaTlsVerifier _verifier;
    private readonly KmsAuthorizer _authorizer;
    private readonly KmsOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lazy<Task<byte[]?>> _bootstrapQuote;

    public KmsService(
        KmsRootKeys roots, KeyEpochStore epochs, RaTlsVerifier verifier, KmsAuthorizer authorizer, KmsOptions options,
        TimeProvider timeProvider, ILogger<KmsService> logger)
    {
        _roots = roots;
        _epochs = epochs;
        _verifier = verifier;
        _authorizer = authorizer;
        _options = options;
        _time = timeProvider;
        _logger = logger;
        _bootstrapQuote = new Lazy<Task<byte[]?>>(BootstrapEvidenceAsync);
    }

    public KmsRootKeys Roots => _roots;

    public KeyEpochStore Epochs => _epochs;

    /// <summary><c>GetAppKey{api_version, vm_config[, epoch]}</c> → dstack's <c>AppKeyResponse</c> plus <c>epoch</c>.</summary>
    public async Task<byte[]> GetAppKeyAsync(JsonElement args, X509Certificate2? clientCertificate, CancellationToken cancellationToken)
    {
        if (UInt(args, "api_version") > 1)
        {
            throw Refuse("GetAppKey", ErrorCode.KmsRequestInvalid, "unsupported api_version (at most 1)");
        }

        var vmConfig = Text(args, "vm_config");
        var requestedEpoch = args.ValueKind == JsonValueKind.Object && args.TryGetProperty("epoch", out var e) && e.ValueKind != JsonValueKind.Null
            ? (uint)UInt(args, "epoch") : (uint?)null;
        var epochs = _epochs.Current;
        var epoch = requestedEpoch ?? epochs.Current;
        if (epochs.Find(epoch) is not { } record)
        {
            throw Refuse("GetAppKey", ErrorCode.KmsEpochUnknown, $"epoch {epoch} was never started (current {epochs.Current})");
        }

        if (record.IsRetired)
        {
            throw Refuse("GetAppKey", ErrorCode.KmsEpochRetired, $"epoch {epoch} was retired at {record.Retired:O}; its keys are no longer derived");
        }

        var caller = await AttestAsync("GetAppKey", clientCertificate, cancellationToken).ConfigureAwait(false);
        var authorization = await _authorizer.AuthorizeAppAsync(caller, _options.Policy, vmConfig, _roots.RootCaSpki, cancellationToken).ConfigureAwait(false);
        if (authorization.Refusal is { } refusal)
        {
            throw Refuse("GetAppKey", refusal.Code, refusal.Reason);
        }

        using var keys = _roots.DeriveAppKeys(caller.AppId, caller.InstanceId, epoch);
        KmsLog.Released(_logger, Convert.ToHexStringLower(caller.AppId), Convert.ToHexStringLower(caller.InstanceId), epoch, caller.IsSimulated ? " (SIMULATED)" : "");
        return Json(w =>
        {
            w.WriteString("ca_cert", _roots.RootCaPem);
            w.WriteString("disk_crypt_key", Convert.ToHexStringLower(keys.DiskCryptKey));
            w.WriteString("env_crypt_key", Convert.ToHexStringLower(keys.EnvCryptKey));
            w.WriteString("k256_key", Convert.ToHexStringLower(keys.K256Key));
            w.WriteString("k256_signature", Convert.ToHexStringLower(keys.K256Signature));
            w.WriteString("tproxy_app_id", authorization.GatewayAppId);
            w.WriteString("gateway_app_id", authorization.GatewayAppId);
            w.WriteString("os_image_hash", Convert.ToHexStringLower(authorization.OsImageHash));
            w.WriteNumber("epoch", epoch);
        });
    }

    /// <summary><c>GetAppEnvEncryptPubKey{app_id[, epoch]}</c> → <c>{public_key, signature, timestamp, signature_v1, epoch}</c>; no authentication.</summary>
    public byte[] GetAppEnvEncryptPubKey(JsonElement args)
    {
        var appId = Bytes(args, "app_id");
        if (appId.Length != 20)
        {
            throw Refuse("GetAppEnvEncryptPubKey", ErrorCode.KmsRequestInvalid, $"app_id must be 20 bytes, got {appId.Length}");
        }

        var epochs = _epochs.Current;
        var epoch = args.ValueKind == JsonValueKind.Object && args.TryGetProperty("epoch", out var e) && e.ValueKind != JsonValueKind.Null
            ? (uint)UInt(args, "epoch") : epochs.Current;
        if (epochs.Find(epoch) is not { IsRetired: false })
        {
            throw Refuse("GetAppEnvEncryptPubKey", epochs.Find(epoch) is null ? ErrorCode.KmsEpochUnknown : ErrorCode.KmsEpochRetired, $"epoch {epoch} is not active");
        }

        var envKey = _roots.EnvCryptKey(appId, epoch);
        try
        {
            var published = AppEnvEncryptPublicKey.Create(_roots.RootK256, appId, envKey, _time.GetUtcNow());
            return Json(w =>
            {
                using var document = JsonDocument.Parse(published.ToJson());
                foreach (var property in document.RootElement.EnumerateObject())
                {
                    property.WriteTo(w);
                }

                w.WriteNumber("epoch", epoch);
            });
        }
        finally
        {
            CryptographicOperations.ZeroMemory(envKey);
        }
    }

    /// <summary><c>GetMeta</c> → dstack's <c>GetMetaResponse</c> plus <c>current_epoch</c> and <c>epochs</c> (active ones).</summary>
    public async Task<byte[]> GetMetaAsync(CancellationToken cancellationToken)
    {
        var bootstrap = await _bootstrapQuote.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        var epochs = _epochs.Current;
        return Json(w =>
        {
            w.WriteString("ca_cert", _roots.RootCaPem);
            w.WriteBoolean("allow_any_upgrade", false);
            w.WriteString("k256_pubkey", Convert.ToHexStringLower(_roots.K256PublicKey));
            if (bootstrap is null)
            {
                w.WriteNull("bootstrap_info");
            }
            else
            {
                w.WriteStartObject("bootstrap_info");
                w.WriteString("ca_pubkey", Convert.ToHexStringLower(_roots.RootCaSpki));
                w.WriteString("k256_pubkey", Convert.ToHexStringLower(_roots.K256PublicKey));
                w.WriteString("quote", Convert.ToHexStringLower(bootstrap));
                w.WriteString("eventlog", "");
                w.WriteEndObject();
            }

            w.WriteBoolean("is_dev", _options.Simulated);
            w.WriteString("gateway_app_id", _options.Policy.GatewayAppId);
            w.WriteNull("kms_contract_address");
            w.WriteNull("chain_id");
            w.WriteNull("app_auth_implementation");
            w.WriteNumber("current_epoch", epochs.Current);
            w.WriteStartArray("epochs");
            foreach (var active in epochs.Active)
            {
                w.WriteNumberValue(active);
            }

            w.WriteEndArray();
        });
    }

    /// <summary><c>GetTempCaCert</c> → <c>{temp_ca_cert, temp_ca_key, ca_cert}</c> (public by design, as in dstack).</summary>
    public byte[] GetTempCaCert() => Json(w =>
    {
        w.WriteString("temp_ca_cert", _roots.TempCaCertificatePem);
        w.WriteString("temp_ca_key", _roots.TempCaKeyPem);
        w.WriteString("ca_cert", _roots.RootCaPem);
    });

    /// <summary>
    /// <c>GetKmsKey</c>: the root keys for a replica KMS (onboarding), only to an RA-TLS caller the policy's
    /// <c>replicas</c> admit → <c>{temp_ca_key, keys:[{ca_key, k256_key}], epochs}</c>.
    /// </summary>
    public async Task<byte[]> GetKmsKeyAsync(JsonElement args, X509Certificate2? clientCertificate, CancellationToken cancellationToken)
    {
        var caller = await AttestAsync("GetKmsKey", clientCertificate, cancellationToken).ConfigureAwait(false);
        var authorization = await _authorizer.AuthorizeReplicaAsync(caller, _options.Policy, Text(args, "vm_config"), _roots.RootCaSpki, cancellationToken).ConfigureAwait(false);
        if (authorization.Refusal is { } refusal)
        {
            throw Refuse("GetKmsKey", refusal.Code, refusal.Reason);
        }

        KmsLog.Replicated(_logger, Convert.ToHexStringLower(caller.AppId), Convert.ToHexStringLower(caller.ComposeHash), caller.IsSimulated ? " (SIMULATED)" : "");
        return Json(w =>
        {
            w.WriteString("temp_ca_key", _roots.TempCaKeyPem);
            w.WriteStartArray("keys");
            w.WriteStartObject();
            w.WriteString("ca_key", _roots.ExportRootCaKeyPem());
            w.WriteString("k256_key", Convert.ToHexStringLower(_roots.RootK256));
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteString("epochs", KeyEpochStore.Serialize(_epochs.Current));
        });
    }

    /// <summary>
    /// <c>SignCert{api_version, csr, signature, vm_config}</c> (dstack.md §9.5): the CSR's own quote and event log are
    /// verified like an RA-TLS certificate's (bound to the CSR key), the CSR signature by that key is checked, the app
    /// is authorized, and the app CA of the current epoch signs a leaf → <c>{certificate_chain:[leaf, app CA, root CA]}</c>.
    /// </summary>
    public async Task<byte[]> SignCertAsync(JsonElement args, CancellationToken cancellationToken)
    {
        const string Method = "SignCert";
        if (UInt(args, "api_version") > 1)
        {
            throw Refuse(Method, ErrorCode.KmsRequestInvalid, "unsupported api_version (at most 1)");
        }

        var csrBytes = Bytes(args, "csr");
        var signature = Bytes(args, "signature");
        CertSigningRequest csr;
        try
        {
            csr = CertSigningRequest.Decode(csrBytes);
        }
        catch (AttestationException e)
        {
            throw Refuse(Method, e.Code, e.Message);
        }

        if (csr.Confirm != CertSigningRequest.ConfirmWord)
        {
            throw Refuse(Method, ErrorCode.KmsRequestInvalid, $"the CSR's confirm word is not \"{CertSigningRequest.ConfirmWord}\"");
        }

        using var publicKey = ECDsa.Create();
        try
        {
            publicKey.ImportSubjectPublicKeyInfo(csr.PublicKey, out var read);
            if (read != csr.PublicKey.Length || publicKey.KeySize != 256)
            {
                throw new CryptographicException("not a bare P-256 SubjectPublicKeyInfo");
            }
        }
        catch (CryptographicException e)
        {
            throw Refuse(Method, ErrorCode.KmsRequestInvalid, $"the CSR public key is not a P-256 SPKI: {e.Message}");
        }

        if (!publicKey.VerifyData(csrBytes, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence))
        {
            throw Refuse(Method, ErrorCode.KmsRequestInvalid, "the CSR signature does not verify with the CSR key");
        }

        var verification = await _verifier.VerifyEvidenceAsync(csr.Quote, csr.EventLog, csr.PublicKey, null, _options.Policy, cancellationToken).ConfigureAwait(false);
        if (verification.Refusal is { } refusal)
        {
            throw Refuse(Method, refusal.Code, refusal.Reason);
        }

        var caller = verification.Caller!;
        var authorization = await _authorizer.AuthorizeAppAsync(caller, _options.Policy, Text(args, "vm_config"), _roots.RootCaSpki, cancellationToken).ConfigureAwait(false);
        if (authorization.Refusal is { } denied)
        {
            throw Refuse(Method, denied.Code, denied.Reason);
        }

        var now = _time.GetUtcNow();
        var (appCa, appCaKey) = _roots.CreateAppCa(caller.AppId, _epochs.Current.Current, now);
        using (appCa)
        using (appCaKey)
        {
            X509Certificate2 leaf;
            try
            {
                leaf = CertificateFactory.CreateLeaf(publicKey, new LeafCertificateRequest
                {
                    Subject = csr.Config.Subject,
                    AltNames = csr.Config.SubjectAltNames,
                    ServerAuth = csr.Config.UsageServerAuth,
                    ClientAuth = csr.Config.UsageClientAuth,
                    NotBefore = CertificateFactory.DefaultNotBefore,
                    NotAfter = now.AddDays(365),
                    Quote = csr.Config.ExtQuote ? csr.Quote : null,
                    EventLogJson = csr.Config.ExtQuote ? csr.EventLog : null,
                    Usage = RaTlsCertificates.AppCustomUsage,
                    AppId = caller.AppId,
                }, appCa, appCaKey);
            }
            catch (ArgumentException e)
            {
                throw Refuse(Method, ErrorCode.KmsRequestInvalid, $"the CSR asks for a certificate that cannot be made: {e.Message}");
            }

            using (leaf)
            {
                return Json(w =>
                {
                    w.WriteStartArray("certificate_chain");
                    w.WriteStringValue(CertificateFactory.ToPem(leaf));
                    w.WriteStringValue(CertificateFactory.ToPem(appCa));
                    w.WriteStringValue(_roots.RootCaPem);
                    w.WriteEndArray();
                });
            }
        }
    }

    /// <summary>
    /// dstack's bootstrap report_data (dstack.md §9.2): Keccak-256("dstack-kms-genereted-keys-v1:" ‖ hex(ca SPKI) ‖ ";"
    /// ‖ hex(k256 pub) ‖ ";") ‖ 32 zero bytes.
    /// </summary>
    public static byte[] BootstrapReportData(ReadOnlySpan<byte> caSpki, ReadOnlySpan<byte> k256PublicKey)
    {
        var text = $"dstack-kms-genereted-keys-v1:{Convert.ToHexStringLower(caSpki)};{Convert.ToHexStringLower(k256PublicKey)};";
        var reportData = new byte[64];
        Hashes.Keccak256(Encoding.ASCII.GetBytes(text)).CopyTo(reportData, 0);
        return reportData;
    }

    private async Task<AttestedCaller> AttestAsync(string method, X509Certificate2? certificate, CancellationToken cancellationToken)
    {
        var verification = await _verifier.VerifyAsync(certificate, _options.Policy, cancellationToken).ConfigureAwait(false);
        if (verification.Refusal is { } refusal)
        {
            throw Refuse(method, refusal.Code, refusal.Reason);
        }

        return verification.Caller!;
    }

    private async Task<byte[]?> BootstrapEvidenceAsync()
    {
        if (_options.QuoteSource is not { } source)
        {
            return null;
        }

        var evidence = await source(BootstrapReportData(_roots.RootCaSpki, _roots.K256PublicKey), CancellationToken.None).ConfigureAwait(false);
        return evidence.Quote;
    }

    private KmsRpcException Refuse(string method, ErrorCode code, string reason)
    {
        KmsLog.Refused(_logger, method, code, (int)code, reason);
        return new KmsRpcException(new KmsRefusal(code, reason));
    }

    internal static byte[] Json(Action<Utf8JsonWriter> writeFields)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writeFields(writer);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static string Text(JsonElement args, string name)
    {
        if (args.ValueKind != JsonValueKind.Object || !args.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return "";
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw KmsRpcException.Invalid($"{name} must be a string");
    }

    private static ulong UInt(JsonElement args, string name)
    {
        if (args.ValueKind != JsonValueKind.Object || !args.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return 0;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetUInt32(out var number)
            ? number : throw KmsRpcException.Invalid($"{name} must be an unsigned 32-bit integer");
    }

    private static byte[] Bytes(JsonElement args, string name)
    {
        var text = Text(args, name);
        if (text.StartsWith("0x", StringComparison.Ordinal))
        {
            text = text[2..];
        }

        return text.Length % 2 == 0 && text.All(char.IsAsciiHexDigit)
            ? Convert.FromHexString(text)
            : throw KmsRpcException.Invalid($"{name} is not hex");
    }
}
