using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Collateral;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.RaTls;
using PrivateMl.Kms.Rpc;

namespace PrivateMl.Kms.Hosting;

/// <summary>What the KMS trusts for quotes: the DCAP trust anchor and where collateral comes from.</summary>
/// <param name="Verifier">DCAP options (Intel root by default; a simulator's root needs <c>AllowSimulated</c>).</param>
/// <param name="Collateral">Collateral for each quote (PCCS, Intel PCS, a bundle, or the simulator).</param>
public sealed record KmsTrust(DcapVerifierOptions Verifier, ICollateralSource Collateral);

/// <summary>
/// Builds the KMS as a Generic Host with Kestrel on HTTPS (dstack.md §9.1): <c>/prpc/&lt;Method&gt;</c> with an optional
/// <c>KMS.</c> prefix, JSON in and out. The server certificate is issued at start by the root CA with usage
/// <c>kms:rpc</c> (and the KMS's own quote when it has a quote source). Client certificates are requested on every
/// connection and judged per request by <see cref="RaTlsVerifier"/>: the TLS layer accepts any, the key methods
/// refuse all but attested ones. Typical use:
/// <code>
/// await using var app = await KmsHost.BuildAsync(options, trust);
/// await app.RunAsync(cancellationToken);
/// </code>
/// </summary>
public static class KmsHost
{
    public static async Task<WebApplication> BuildAsync(
        KmsOptions options,
        KmsTrust trust,
        TimeProvider? timeProvider = null,
        HttpClient? webhookClient = null,
        Action<ILoggingBuilder>? configureLogging = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(trust);
        options.Validate();
        var time = timeProvider ?? TimeProvider.System;
        using var random = RandomNumberGenerator.Create();
        var roots = KmsRootKeys.OpenOrCreate(options.StateDirectory, random);
        X509Certificate2 serverCertificate;
        try
        {
            serverCertificate = await CreateServerCertificateAsync(options, roots, time, random, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            roots.Dispose();
            throw;
        }

        var builder = ServiceHost.CreateBuilder(configureLogging);

        // The clock is handed to the KMS components directly (not registered), so hosting internals keep the system clock.
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(sp => new KmsService(
            roots,
            new KeyEpochStore(options.StateDirectory, time),
            new RaTlsVerifier(new DcapVerifier(trust.Verifier), trust.Collateral, new QuoteReplayCache(), time),
            new KmsAuthorizer(webhookClient),
            options,
            time,
            sp.GetRequiredService<ILogger<KmsService>>()));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = OversizeBody.KestrelCap(options.MaxRequestBodyBytes);
            kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            var url = options.ListenUrl;
            void Configure(ListenOptions listen)
            {
                listen.Protocols = HttpProtocols.Http1;
                listen.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificate = serverCertificate,
                    ClientCertificateMode = ClientCertificateMode.AllowCertificate,
                    ClientCertificateValidation = (_, _, _) => true,
                    CheckCertificateRevocation = false,
                });
            }

            if (url.Host == "localhost")
            {
                kestrel.ListenLocalhost(url.Port, Configure);
            }
            else
            {
                var address = IPAddress.TryParse(url.Host.Trim('[', ']'), out var ip) ? ip : IPAddress.Any;
                kestrel.Listen(address, url.Port, Configure);
            }
        });

        var app = builder.Build();
        var service = app.Services.GetRequiredService<KmsService>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(KmsHost));
        app.Run(context => HandleAsync(context, service, options, logger));
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            if (options.Simulated)
            {
                KmsLog.Simulated(logger);
            }

            var policy = options.Policy;
            if (policy.AppIds is null && policy.ComposeHashes is null && policy.OsImages is null && policy.Webhook is null)
            {
                KmsLog.OpenPolicy(logger);
            }

            KmsLog.Listening(logger, string.Join(", ", app.Urls), Convert.ToHexStringLower(SHA256.HashData(roots.RootCaSpki))[..16],
                Convert.ToHexStringLower(roots.K256PublicKey), service.Epochs.Current.Current);
        });
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            roots.Dispose();
            serverCertificate.Dispose();
        });
        return app;
    }

    /// <summary>The TLS server certificate: a fresh P-256 key, signed by the root CA, with the KMS's quote if it has one.</summary>
    private static async Task<X509Certificate2> CreateServerCertificateAsync(
        KmsOptions options, KmsRootKeys roots, TimeProvider time, RandomNumberGenerator random, CancellationToken cancellationToken)
    {
        using var key = LocalKeyProvider.NewP256(random);
        RaTlsEvidence? evidence = null;
        if (options.QuoteSource is { } source)
        {
            evidence = await source(CertificateFactory.RaTlsReportData(key), cancellationToken).ConfigureAwait(false);
        }

        using var rootKey = roots.CreateRootCaKey();
        return RaTlsCertificates.CreateKmsServer(key, options.ServerNames, time.GetUtcNow(), TimeSpan.FromDays(365), roots.RootCaCertificate, rootKey, evidence);
    }

    private static async Task HandleAsync(HttpContext context, KmsService service, KmsOptions options, ILogger logger)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        int status;
        byte[] body;
        try
        {
            var method = Route(path);
            if (!HttpMethods.IsPost(request.Method) && !HttpMethods.IsGet(request.Method))
            {
                throw KmsRpcException.Invalid($"HTTP {request.Method} is not allowed; use POST (or GET with a query string)");
            }

            using var args = HttpMethods.IsGet(request.Method) ? QueryArgs(request.Query) : await ReadArgsAsync(context, options.MaxRequestBodyBytes);
            var certificate = KmsService.KeyMethods.Contains(method)
                ? await context.Connection.GetClientCertificateAsync(context.RequestAborted)
                : null;
            var ct = context.RequestAborted;
            body = method switch
            {
                "GetAppKey" => await service.GetAppKeyAsync(args.RootElement, certificate, ct),
                "GetAppEnvEncryptPubKey" => service.GetAppEnvEncryptPubKey(args.RootElement),
                "GetMeta" => await service.GetMetaAsync(ct),
                "GetTempCaCert" => service.GetTempCaCert(),
                "GetKmsKey" => await service.GetKmsKeyAsync(args.RootElement, certificate, ct),
                "SignCert" => await service.SignCertAsync(args.RootElement, ct),
                _ => throw new KmsRpcException(new KmsRefusal(Attestation.Verification.ErrorCode.KmsRequestInvalid, $"method not found: {method}")),
            };
            status = 200;
        }
        catch (KmsRpcException e)
        {
            status = e.Refusal.Reason.StartsWith("method not found", StringComparison.Ordinal) ? 404 : 400;
            body = ErrorBody(e.Refusal);
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException e)
        {
            status = e.StatusCode is >= 400 and < 500 ? e.StatusCode : 400;
            body = ErrorBody(new KmsRefusal(Attestation.Verification.ErrorCode.KmsRequestInvalid, e.Message));
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (Exception e)
        {
            KmsLog.Failed(logger, path, e);
            status = 500;
            body = ErrorBody(new KmsRefusal(Attestation.Verification.ErrorCode.KmsRequestInvalid, $"internal error: {e.GetType().Name}"));
        }

        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary><c>/prpc/Method</c> or <c>/prpc/KMS.Method</c> → <c>Method</c>.</summary>
    internal static string Route(string path)
    {
        if (!path.StartsWith("/prpc/", StringComparison.Ordinal))
        {
            throw new KmsRpcException(new KmsRefusal(Attestation.Verification.ErrorCode.KmsRequestInvalid, $"method not found: {path}"));
        }

        var name = path["/prpc/".Length..];
        return name.StartsWith("KMS.", StringComparison.Ordinal) ? name["KMS.".Length..] : name;
    }

    /// <summary>dstack's error body (pretty-printed <c>{"error": …}</c>) with the stable code beside it.</summary>
    internal static byte[] ErrorBody(KmsRefusal refusal)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, IndentSize = 2, NewLine = "\n" }))
        {
            writer.WriteStartObject();
            writer.WriteString("error", $"{refusal.Code}: {refusal.Reason}");
            writer.WriteString("code", refusal.Code.ToString());
            writer.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static async Task<JsonDocument> ReadArgsAsync(HttpContext context, int limit)
    {
        using var memory = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            if (memory.Length + read > limit)
            {
                await OversizeBody.DrainAsync(context.Request.Body, buffer, memory.Length + read, limit, context.RequestAborted);
                throw new Microsoft.AspNetCore.Http.BadHttpRequestException($"the request body is larger than {limit} bytes", 413);
            }

            memory.Write(buffer, 0, read);
        }

        var bytes = memory.ToArray();
        if (bytes.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
        {
            return JsonDocument.Parse("{}");
        }

        try
        {
            var document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16 });
            if (document.RootElement.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
            {
                document.Dispose();
                throw KmsRpcException.Invalid("the request body must be a JSON object");
            }

            return document;
        }
        catch (JsonException e)
        {
            throw KmsRpcException.Invalid($"malformed JSON body: {e.Message}");
        }
    }

    /// <summary>A GET query as a JSON object (digits become numbers).</summary>
    private static JsonDocument QueryArgs(IQueryCollection query)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            foreach (var (name, values) in query)
            {
                var value = values.ToString();
                if (value.Length is > 0 and <= 9 && value.All(char.IsAsciiDigit))
                {
                    writer.WriteNumber(name, uint.Parse(value, System.Globalization.CultureInfo.InvariantCulture));
                }
                else
                {
                    writer.WriteString(name, value);
                }
            }

            writer.WriteEndObject();
        }

        return JsonDocument.Parse(stream.ToArray());
    }
}
