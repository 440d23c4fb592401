using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Protocol;

/// <summary>
/// The methods of dstack's <c>DstackGuest</c> service and the legacy <c>Tappd</c> service (dstack.md §3.2, §3.3,
/// §3.6), each taking parsed arguments and returning the JSON response bytes. Field names and order follow the
/// proto declarations; all fields are always present.
/// </summary>
internal sealed class GuestApi(AgentRuntime runtime, RandomNumberGenerator random, ILogger<GuestApi> logger) : IDisposable
{
    private const int MaxEventNameChars = 256;
    private readonly SemaphoreSlim _appCertGate = new(1, 1);
    private string? _appCert;

    public static string Revision { get; } =
        "privateml:" + (typeof(GuestApi).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "dev");

    // ---- DstackGuest ----

    public async Task<byte[]> GetQuoteAsync(RpcArgs args, CancellationToken ct)
    {
        var reportData = PadReportData(args.GetBytes("report_data"));
        var measured = await runtime.QuoteAsync(reportData, ct);
        return RpcJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteHex("quote", measured.Quote);
            w.WriteString("event_log", TdxEventLog.Serialize(measured.EventLog));
            w.WriteHex("report_data", reportData);
            w.WriteString("vm_config", runtime.Options.VmConfig);
            w.WriteEndObject();
        });
    }

    public Task<byte[]> GetKeyAsync(RpcArgs args)
    {
        var path = args.GetString("path");
        var purpose = args.GetString("purpose");
        var algorithmName = args.GetString("algorithm");
        if (!AlgorithmNames.TryParseKeyAlgorithm(algorithmName, out var algorithm))
        {
            throw RpcException.BadRequest($"unsupported algorithm '{algorithmName}' (secp256k1 or ed25519)");
        }

        return Task.FromResult(DerivedKeyJson(new GuestKeyDerivation(runtime.AppKeys).GetKey(path, purpose, algorithm), "key", "signature_chain"));
    }

    public async Task<byte[]> GetTlsKeyAsync(RpcArgs args, CancellationToken ct)
    {
        var subject = args.GetString("subject");
        var altNames = args.GetStringList("alt_names");
        var raTls = args.GetBool("usage_ra_tls");
        var serverAuth = args.GetBool("usage_server_auth");
        var clientAuth = args.GetBool("usage_client_auth");
        var notBefore = args.GetOptionalUInt64("not_before");
        var notAfter = args.GetOptionalUInt64("not_after");
        _ = args.GetBool("with_app_info");
        using var key = LocalKeyProvider.NewP256(random);
        return await IssueAsync(key, subject, altNames, raTls, serverAuth, clientAuth, notBefore, notAfter, ct);
    }

    public async Task<byte[]> InfoAsync(CancellationToken ct)
    {
        var measured = await runtime.QuoteAsync(new byte[AgentRuntime.ReportDataSize], ct);
        var td = AgentRuntime.ReadTdReport(measured.Quote);
        var identity = DstackAppIdentity.FromEventLog(measured.EventLog);
        var deviceId = SHA256.HashData(measured.Quote.AsSpan(28, 20));
        var mrAggregated = MrAggregated(td);
        var composeHash = identity.ComposeHash?.ToArray() ?? [];
        var osImageHash = identity.OsImageHash?.ToArray() ?? [];
        var appCert = await AppCertAsync(ct);

        var tcbInfo = Encoding.UTF8.GetString(RpcJson.Write(w =>
        {
            // serde_json Map order (alphabetical), 2-space pretty print (dstack.md §3.7).
            w.WriteStartObject();
            w.WriteString("app_compose", runtime.AppCompose);
            w.WriteHex("compose_hash", composeHash);
            w.WriteHex("device_id", deviceId);
            w.WritePropertyName("event_log");
            using (var log = JsonDocument.Parse(TdxEventLog.Serialize(measured.EventLog)))
            {
                log.RootElement.WriteTo(w);
            }

            w.WriteHex("mr_aggregated", mrAggregated);
            w.WriteHex("mrtd", td.MrTd.Span);
            w.WriteHex("os_image_hash", osImageHash);
            w.WriteHex("rtmr0", td.Rtmr0.Span);
            w.WriteHex("rtmr1", td.Rtmr1.Span);
            w.WriteHex("rtmr2", td.Rtmr2.Span);
            w.WriteHex("rtmr3", td.Rtmr3.Span);
            w.WriteEndObject();
        }, indented: true));

        return RpcJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteHex("app_id", (identity.AppId ?? ReadOnlyMemory<byte>.Empty).Span);
            w.WriteHex("instance_id", (identity.InstanceId ?? ReadOnlyMemory<byte>.Empty).Span);
            w.WriteString("app_cert", appCert);
            w.WriteString("tcb_info", tcbInfo);
            w.WriteString("app_name", runtime.AppName);
            w.WriteHex("device_id", deviceId);
            w.WriteHex("mr_aggregated", mrAggregated);
            w.WriteHex("os_image_hash", osImageHash);
            w.WriteString("key_provider_info", identity.KeyProviderInfo ?? "");
            w.WriteHex("compose_hash", composeHash);
            w.WriteString("vm_config", runtime.Options.VmConfig);
            w.WriteEndObject();
        });
    }

    public async Task<byte[]> EmitEventAsync(RpcArgs args, CancellationToken ct)
    {
        var name = args.GetString("event");
        var payload = args.GetBytes("payload");
        if (name.Length == 0)
        {
            throw RpcException.BadRequest("event name must not be empty");
        }

        if (name.Length > MaxEventNameChars)
        {
            throw RpcException.BadRequest($"event name is longer than {MaxEventNameChars} characters");
        }

        if (payload.Length > TdxEventLogLimits.MaxPayloadBytes)
        {
            throw RpcException.BadRequest($"event payload is larger than {TdxEventLogLimits.MaxPayloadBytes} bytes");
        }

        try
        {
            // Validates the name (a TdxEvent must be measurable) before anything is extended.
            _ = TdxEvent.CreateRuntime(name, payload);
        }
        catch (AttestationException e)
        {
            throw RpcException.BadRequest($"invalid event: {e.Message}");
        }

        await runtime.EmitEventAsync(name, payload, ct);
        AgentLog.EventEmitted(logger, name, payload.Length);
        return RpcJson.Null;
    }

    public Task<byte[]> SignAsync(RpcArgs args)
    {
        var algorithmName = args.GetString("algorithm");
        var data = args.GetBytes("data");
        if (!AlgorithmNames.TryParseSignatureAlgorithm(algorithmName, out var algorithm))
        {
            throw RpcException.BadRequest($"unsupported algorithm '{algorithmName}' (secp256k1, secp256k1_prehashed or ed25519)");
        }

        if (algorithm == SignatureAlgorithmKind.Secp256k1Prehashed && data.Length != 32)
        {
            throw RpcException.BadRequest($"secp256k1_prehashed needs a 32-byte digest, got {data.Length} bytes");
        }

        var result = new GuestKeyDerivation(runtime.AppKeys).Sign(algorithm, data);
        return Task.FromResult(RpcJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteHex("signature", result.Signature);
            w.WriteHexArray("signature_chain", result.SignatureChain);
            w.WriteHex("public_key", result.PublicKey);
            w.WriteEndObject();
        }));
    }

    public Task<byte[]> VerifyAsync(RpcArgs args)
    {
        var algorithmName = args.GetString("algorithm");
        var data = args.GetBytes("data");
        var signature = args.GetBytes("signature");
        var publicKey = args.GetBytes("public_key");
        if (!AlgorithmNames.TryParseSignatureAlgorithm(algorithmName, out var algorithm))
        {
            throw RpcException.BadRequest($"unsupported algorithm '{algorithmName}' (secp256k1, secp256k1_prehashed or ed25519)");
        }

        var valid = GuestKeyDerivation.Verify(algorithm, data, signature, publicKey);
        return Task.FromResult(RpcJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("valid", valid);
            w.WriteEndObject();
        }));
    }

    /// <summary>dstack HEAD Attest returns a VersionedAttestation (SCALE/msgpack) — not implemented here; refused without side effects.</summary>
    public Task<byte[]> AttestAsync(RpcArgs args, CancellationToken ct)
    {
        _ = PadReportData(args.GetBytes("report_data"));
        _ = ct;
        throw new RpcException(501, "Attest (VersionedAttestation encoding) is not implemented by this agent; use GetQuote");
    }

    public Task<byte[]> VersionAsync() => Task.FromResult(RpcJson.Write(w =>
    {
        w.WriteStartObject();
        w.WriteString("version", runtime.Options.ApiVersion);
        w.WriteString("rev", Revision);
        w.WriteEndObject();
    }));

    // ---- Tappd (legacy) ----

    public async Task<byte[]> TdxQuoteAsync(RpcArgs args, bool raw, CancellationToken ct)
    {
        var content = args.GetBytes("report_data");
        var algorithm = raw ? "raw" : args.GetString("hash_algorithm");
        var prefix = raw ? "" : args.GetString("prefix");
        if (algorithm.Length == 0)
        {
            algorithm = "sha512";
        }

        byte[] reportData;
        if (algorithm == "raw")
        {
            if (content.Length != AgentRuntime.ReportDataSize)
            {
                throw RpcException.BadRequest($"invalid content length: raw report data must be exactly 64 bytes, got {content.Length}");
            }

            reportData = content;
        }
        else
        {
            var tag = prefix.Length == 0 ? "app-data" : prefix;
            var hash = Hashes.ByDstackName(algorithm, [.. Encoding.UTF8.GetBytes(tag + ":"), .. content])
                ?? throw RpcException.BadRequest($"invalid hash algorithm '{algorithm}'");
            reportData = PadReportData(hash);
        }

        var measured = await runtime.QuoteAsync(reportData, ct);
        return RpcJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteHex("quote", measured.Quote);
            w.WriteString("event_log", TdxEventLog.Serialize(measured.EventLog));
            w.WriteString("hash_algorithm", algorithm);
            w.WriteString("prefix", algorithm == "raw" ? "" : "app-data");
            w.WriteEndObject();
        });
    }

    public async Task<byte[]> DeriveKeyAsync(RpcArgs args, CancellationToken ct)
    {
        var path = args.GetString("path");
        var subject = args.GetString("subject");
        var altNames = args.GetStringList("alt_names");
        var raTls = args.GetBool("usage_ra_tls");
        var serverAuth = args.GetBool("usage_server_auth");
        var clientAuth = args.GetBool("usage_client_auth");
        var randomSeed = args.GetBool("random_seed");
        ECDsa key;
        if (randomSeed)
        {
            var seed = new byte[32];
            random.GetBytes(seed);
            key = DstackKdf.DeriveP256(seed, Encoding.UTF8.GetBytes(path));
            CryptographicOperations.ZeroMemory(seed);
        }
        else
        {
            key = new GuestKeyDerivation(runtime.AppKeys).DeriveP256(path);
        }

        using (key)
        {
            return await IssueAsync(key, subject, altNames, raTls, serverAuth, clientAuth, null, null, ct);
        }
    }

    public Task<byte[]> DeriveK256KeyAsync(RpcArgs args) => Task.FromResult(DerivedKeyJson(
        new GuestKeyDerivation(runtime.AppKeys).GetKey(args.GetString("path"), args.GetString("purpose"), KeyAlgorithm.Secp256k1), "k256_key", "k256_signature_chain"));

    /// <summary>{ keyName: hex, chainName: [hex…] } for a derived key; the key bytes are zeroed once written.</summary>
    private static byte[] DerivedKeyJson(DerivedKey derived, string keyName, string chainName)
    {
        try
        {
            return RpcJson.Write(w =>
            {
                w.WriteStartObject();
                w.WriteHex(keyName, derived.Key);
                w.WriteHexArray(chainName, derived.SignatureChain);
                w.WriteEndObject();
            });
        }
        finally
        {
            CryptographicOperations.ZeroMemory(derived.Key);
        }
    }

    public void Dispose() => _appCertGate.Dispose();

    // ---- helpers ----

    internal static byte[] PadReportData(byte[] data)
    {
        if (data.Length > AgentRuntime.ReportDataSize)
        {
            throw RpcException.BadRequest($"Report data is too long: {data.Length} bytes, at most 64");
        }

        var padded = new byte[AgentRuntime.ReportDataSize];
        data.CopyTo(padded, 0);
        return padded;
    }

    internal static byte[] MrAggregated(PrivateMl.Attestation.Tdx.TdReportBody td)
    {
        var parts = new List<byte>(48 * 8);
        parts.AddRange(td.MrTd.Span);
        parts.AddRange(td.Rtmr0.Span);
        parts.AddRange(td.Rtmr1.Span);
        parts.AddRange(td.Rtmr2.Span);
        parts.AddRange(td.Rtmr3.Span);
        if (td.MrConfigId.Span.ContainsAnyExcept((byte)0) || td.MrOwner.Span.ContainsAnyExcept((byte)0) || td.MrOwnerConfig.Span.ContainsAnyExcept((byte)0))
        {
            parts.AddRange(td.MrConfigId.Span);
            parts.AddRange(td.MrOwner.Span);
            parts.AddRange(td.MrOwnerConfig.Span);
        }

        return SHA256.HashData([.. parts]);
    }

    private async Task<byte[]> IssueAsync(
        ECDsa key, string subject, IReadOnlyList<string> altNames, bool raTls, bool serverAuth, bool clientAuth,
        ulong? notBefore, ulong? notAfter, CancellationToken ct)
    {
        var now = runtime.TimeProvider.GetUtcNow();
        var from = notBefore is { } nb ? ToTime(nb, "not_before") : CertificateFactory.DefaultNotBefore;
        var until = notAfter is { } na ? ToTime(na, "not_after") : now.AddDays(3650);
        if (from >= until)
        {
            throw RpcException.BadRequest("not_before must be earlier than not_after");
        }

        foreach (var name in altNames)
        {
            if (name.Length is 0 or > 253 || Uri.CheckHostName(name.TrimStart('*', '.')) == UriHostNameType.Unknown)
            {
                throw RpcException.BadRequest($"alt name '{name}' is not a DNS name");
            }
        }

        byte[]? quote = null;
        byte[]? eventLog = null;
        if (raTls)
        {
            var measured = await runtime.QuoteAsync(CertificateFactory.RaTlsReportData(key), ct);
            quote = measured.Quote;
            eventLog = Encoding.UTF8.GetBytes(TdxEventLog.Serialize(measured.EventLog));
        }

        var keys = runtime.AppKeys;
        var caNotAfter = new DateTimeOffset(keys.AppCaCertificate.NotAfter.ToUniversalTime());
        using var leaf = CertificateFactory.CreateLeaf(
            key,
            new LeafCertificateRequest
            {
                Subject = subject,
                AltNames = altNames,
                ServerAuth = serverAuth,
                ClientAuth = clientAuth,
                NotBefore = from,
                NotAfter = until < caNotAfter ? until : caNotAfter,
                Quote = quote,
                EventLogJson = eventLog,
                Usage = "app:custom",
            },
            keys.AppCaCertificate,
            keys.AppCaKey);
        var pem = DstackKdf.ToPkcs8Pem(key);
        return RpcJson.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("key", pem);
            w.WriteStartArray("certificate_chain");
            w.WriteStringValue(CertificateFactory.ToPem(leaf));
            w.WriteStringValue(CertificateFactory.ToPem(keys.AppCaCertificate));
            foreach (var issuer in keys.IssuerChain)
            {
                w.WriteStringValue(CertificateFactory.ToPem(issuer));
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private static DateTimeOffset ToTime(ulong seconds, string field) =>
        seconds <= 253402300799UL ? DateTimeOffset.FromUnixTimeSeconds((long)seconds) : throw RpcException.BadRequest($"{field} is out of range");

    private async Task<string> AppCertAsync(CancellationToken ct)
    {
        if (_appCert is { } cached)
        {
            return cached;
        }

        await _appCertGate.WaitAsync(ct);
        try
        {
            if (_appCert is null)
            {
                using var key = LocalKeyProvider.NewP256(random);
                var response = await IssueAsync(key, "demo-cert", [], raTls: true, serverAuth: false, clientAuth: true, null, null, ct);
                using var document = JsonDocument.Parse(response);
                _appCert = string.Concat(document.RootElement.GetProperty("certificate_chain").EnumerateArray().Select(e => e.GetString()));
            }

            return _appCert;
        }
        finally
        {
            _appCertGate.Release();
        }
    }
}
