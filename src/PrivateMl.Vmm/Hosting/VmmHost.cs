using System.Net.Http.Json;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent.Hosting;
using PrivateMl.Vmm.Client;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Images;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Hosting;

/// <summary>
/// The VMM service: dstack-vmm's HTTP surface (dstack.md §11.1) — <c>/prpc/&lt;Method&gt;</c> (JSON; <c>Teepod.</c>/<c>Vmm.</c>
/// prefixes accepted), <c>GET /logs?id=&amp;follow=&amp;lines=&amp;ch=</c>, and the guest-facing host API
/// (<c>/api/Info</c>, <c>/api/Notify</c>; per VM at <c>/vm/&lt;id&gt;/api/…</c> for development guests that reach the
/// host over user-mode networking).
/// </summary>
public static class VmmHost
{
    public const string Version = "0.5.5";

    /// <summary>
    /// Builds the Kestrel app listening on <see cref="VmmOptions.Address"/> (port 0 picks a free port). Refuses (a
    /// <see cref="VmmException"/>) to listen beyond loopback without auth unless the config says so, and auth enabled
    /// without tokens. With auth, every route but the guests' host API over loopback needs a token. A background loop
    /// enforces graceful-stop deadlines every second (<see cref="VmManager.EnforceStopDeadlinesAsync"/>).
    /// </summary>
    public static WebApplication Build(VmmOptions options, VmManager? manager = null, HttpClient? kmsHttp = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        VmmAuth.CheckExposure(options);
        var auth = new VmmAuth(options.Auth);
        var builder = ServiceHost.CreateBuilder(null);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls(options.Address);
        var vms = manager ?? new VmManager(options);
        builder.Services.AddSingleton(vms);
        builder.Services.AddHostedService(_ => new StopDeadlineLoop(vms));
        var app = builder.Build();
        vms.Logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PrivateMl.Vmm");
        var http = kmsHttp ?? VmmClient.CreateKmsHttpClient();
        vms.HostApiUrl = manifest => HostApiUrl(app, manifest);
        app.Use(async (context, next) =>
        {
            if (auth.Allows(context))
            {
                await next(context);
            }
            else
            {
                await VmmAuth.RefuseAsync(context);
            }
        });

        app.MapMethods("/prpc/{method}", ["GET", "POST"], (HttpContext context, string method) => Rpc(context, vms, http, method));
        app.MapGet("/logs", (HttpContext context) => Logs(context, vms));
        app.MapPost("/api/{method}", (HttpContext context, string method) => HostApi(context, vms, null, method));
        app.MapPost("/vm/{id}/api/{method}", (HttpContext context, string id, string method) => HostApi(context, vms, id, method));
        app.MapGet("/", () => Results.Text("privateml vmm: dstack-vmm compatible VM manager. RPC at /prpc/<Method>?json; see docs/vmm.md\n"));
        return app;
    }

    /// <summary>The host API URL written into .sys-config.json: dstack's vsock form, or for a development VM the host's listener as 10.0.2.2.</summary>
    private static string HostApiUrl(WebApplication app, VmManifest manifest)
    {
        if (!manifest.NoTee)
        {
            return $"vsock://2:{app.Services.GetRequiredService<VmManager>().Options.HostApiPort}/api";
        }

        var address = app.Urls.FirstOrDefault(u => u.StartsWith("http://", StringComparison.Ordinal));
        return address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri)
            ? $"http://10.0.2.2:{uri.Port}/vm/{manifest.Id}/api"
            : "";
    }

    private static async Task Rpc(HttpContext context, VmManager vms, HttpClient http, string method)
    {
        var name = method.StartsWith("Teepod.", StringComparison.Ordinal) ? method[7..] : method.StartsWith("Vmm.", StringComparison.Ordinal) ? method[4..] : method;
        var ct = context.RequestAborted;
        byte[] response;
        try
        {
            var body = await ReadBody(context);
            object? result = name switch
            {
                "CreateVm" => new Dictionary<string, string> { ["id"] = await vms.CreateAsync(Parse<VmConfiguration>(body), ct) },
                "StartVm" => await Done(vms.StartAsync(Parse<IdRequest>(body).Id, ct)),
                "StopVm" => await Done(vms.StopAsync(Parse<IdRequest>(body).Id, force: true, ct)),
                "ShutdownVm" => await Done(vms.ShutdownAsync(Parse<IdRequest>(body).Id, ct)),
                "RemoveVm" => await Done(vms.RemoveAsync(Parse<IdRequest>(body).Id, ct)),
                "ResizeVm" => await Done(vms.ResizeAsync(Parse<ResizeVmRequest>(body), ct)),
                "UpgradeApp" or "UpdateVm" => new Dictionary<string, string> { ["id"] = await vms.UpgradeAsync(Parse<UpgradeAppRequest>(body), ct) },
                "GetComposeHash" => new Dictionary<string, string> { ["hash"] = Convert.ToHexStringLower(AppCompose.Parse(Parse<VmConfiguration>(body).ComposeFile).ComposeHash) },
                "Status" => Status(vms, Parse<StatusRequest>(body)),
                "GetInfo" => GetInfo(vms, Parse<IdRequest>(body).Id),
                "ListImages" => new ImageListResponse
                {
                    Images = VmImage.List(vms.Options.ImagePath).Select(i => new ImageEntry { Name = i.Name, Description = JsonSerializer.Serialize(i.Info), Version = i.Info.Version, IsDev = i.Info.IsDev }).ToList(),
                },
                "ListGpus" => vms.ListGpus(),
                // State is read from the work directories on every call, so there is nothing to re-sync: report what is there.
                "ReloadVms" => new Dictionary<string, int> { ["loaded"] = vms.WorkDirs().Count, ["updated"] = 0, ["removed"] = 0 },
                "Version" => new Dictionary<string, string> { ["version"] = Version, ["rev"] = typeof(VmmHost).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "" },
                "GetMeta" => Meta(vms.Options),
                "GetAppEnvEncryptPubKey" => await EnvPublicKey(http, vms.Options, Parse<AppIdRequest>(body).AppId, ct),
                _ => throw new VmmException(VmmErrorCode.InvalidArgument, $"no method {name}"),
            };
            response = result switch
            {
                null => "null"u8.ToArray(),
                byte[] raw => raw,
                _ => JsonSerializer.SerializeToUtf8Bytes(result, result.GetType(), VmmJson.Options),
            };
            context.Response.StatusCode = 200;
        }
        catch (VmmException e)
        {
            response = VmmJson.Error(e.Message);
            context.Response.StatusCode = 400;
        }

        context.Response.ContentType = "application/json";
        context.Response.ContentLength = response.Length;
        await context.Response.Body.WriteAsync(response, ct);
    }

    private static async Task<object?> Done(Task task)
    {
        await task;
        return null;
    }

    private static StatusResponse Status(VmManager vms, StatusRequest request)
    {
        var all = vms.List(request.Brief).Where(v =>
            (request.Ids.Count == 0 || request.Ids.Contains(v.Id)) &&
            (request.Keyword.Length == 0 || v.Name.Contains(request.Keyword, StringComparison.OrdinalIgnoreCase) || v.Id.Contains(request.Keyword, StringComparison.Ordinal) || v.AppId.Contains(request.Keyword, StringComparison.Ordinal))).ToList();
        var page = request.Page > 0 && request.PageSize > 0
            ? all.Skip((int)Math.Min(int.MaxValue, (request.Page - 1) * request.PageSize)).Take((int)Math.Min(int.MaxValue, request.PageSize)).ToList()
            : all;
        return new StatusResponse { Vms = page, PortMappingEnabled = vms.Options.PortMappingEnabled, Total = all.Count };
    }

    private static GetInfoResponse GetInfo(VmManager vms, string id)
    {
        try
        {
            return new GetInfoResponse { Found = true, Info = vms.Info(vms.WorkDir(id)) };
        }
        catch (VmmException e) when (e.Code == VmmErrorCode.UnknownVm)
        {
            return new GetInfoResponse { Found = false };
        }
    }

    private static Dictionary<string, object> Meta(VmmOptions o) => new()
    {
        ["kms"] = new Dictionary<string, object> { ["url"] = (o.KmsUrls.Count > 0 ? o.KmsUrls[0] : ""), ["urls"] = o.KmsUrls },
        ["gateway"] = new Dictionary<string, object> { ["url"] = (o.GatewayUrls.Count > 0 ? o.GatewayUrls[0] : ""), ["base_domain"] = "", ["port"] = 0, ["agent_port"] = 0, ["urls"] = o.GatewayUrls },
        ["resources"] = new Dictionary<string, object> { ["max_cvm_number"] = o.MaxCvmNumber, ["max_allocable_vcpu"] = Environment.ProcessorCount, ["max_allocable_memory_in_mb"] = 0 },
    };

    /// <summary>
    /// GetAppEnvEncryptPubKey, forwarded to the KMS as dstack does (dstack.md §7.1): each <c>kms_urls</c> entry in order
    /// until one answers with a JSON object, which is passed through unchanged (<c>public_key</c>, <c>signature</c>, and a
    /// newer KMS's <c>timestamp</c>/<c>signature_v1</c>): the client verifies the signature, so this VMM trusts no KMS.
    /// An entry that is not reached, times out, fails TLS, answers an HTTP error or something that is not a JSON object
    /// is passed over, as the guest passes over a KMS for its keys (<c>KmsKeyProvider</c>). When all fail, the error
    /// names each URL and why, in order; with one URL, that URL's own error.
    /// </summary>
    /// <remarks>
    /// dstack-vmm asks one KMS here, its top-level <c>kms_url</c> setting (apart from <c>cvm.kms_urls</c>, the guests'
    /// list), and fails when that one does; this VMM has only <c>kms_urls</c>, so it tries each of them. As dstack-vmm's
    /// KMS client (<c>tls_no_check</c>), the KMS's server certificate is not checked: it chains to the KMS's own root,
    /// and the trust decision is the signature the client checks against its trusted KMS keys.
    /// </remarks>
    private static async Task<byte[]> EnvPublicKey(HttpClient http, VmmOptions options, string appId, CancellationToken ct)
    {
        if (options.KmsUrls.Count == 0)
        {
            throw new VmmException(VmmErrorCode.Upstream, "KMS is not configured on this VMM (kms_urls)");
        }

        _ = Hex.Decode(appId, "app_id");
        var failures = new List<string>(options.KmsUrls.Count);
        foreach (var kms in options.KmsUrls)
        {
            try
            {
                return await EnvPublicKeyFrom(http, kms, appId, ct);
            }
            catch (VmmException e) when (e.Code == VmmErrorCode.Upstream)
            {
                failures.Add(e.Message);
            }
        }

        throw new VmmException(VmmErrorCode.Upstream, failures.Count == 1
            ? failures[0]
            : $"no KMS gave the app's env public key ({failures.Count} tried, in order): {string.Join("; ", failures)}");
    }

    /// <summary>One KMS's answer to GetAppEnvEncryptPubKey; any failure is a <see cref="VmmErrorCode.Upstream"/> naming <paramref name="kms"/>.</summary>
    private static async Task<byte[]> EnvPublicKeyFrom(HttpClient http, string kms, string appId, CancellationToken ct)
    {
        if (!Uri.TryCreate(kms, UriKind.Absolute, out var baseUrl) || baseUrl.Scheme is not ("http" or "https"))
        {
            throw new VmmException(VmmErrorCode.Upstream, $"KMS {kms}: not an http(s) URL");
        }

        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(new Uri(kms.TrimEnd('/') + "/"), "prpc/GetAppEnvEncryptPubKey?json"))
            {
                Content = JsonContent.Create(new Dictionary<string, string> { ["app_id"] = appId }),
            };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var body = await VmmClient.ReadBounded(response, ct, 64 * 1024);
            if (!response.IsSuccessStatusCode)
            {
                throw new VmmException(VmmErrorCode.Upstream, $"answered {(int)response.StatusCode}{(VmmClient.ErrorText(body) is { } error ? $": {error}" : "")}");
            }

            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object ? body : throw new VmmException(VmmErrorCode.Upstream, "answered something other than a JSON object");
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or VmmException || (e is TaskCanceledException && !ct.IsCancellationRequested))
        {
            throw new VmmException(VmmErrorCode.Upstream, $"KMS {kms}: {(e is TaskCanceledException ? $"no answer within {http.Timeout.TotalSeconds:0.#} s" : e.Message)}");
        }
    }

    /// <summary>The guest-facing host API: Info → {name, version}; Notify → null (instance.info is recorded in shared/.instance_info).</summary>
    private static async Task HostApi(HttpContext context, VmManager vms, string? id, string method)
    {
        byte[] response;
        try
        {
            var body = await ReadBody(context);
            VmWorkDir? workDir = id is null ? null : vms.WorkDir(id);
            switch (method)
            {
                case "Info":
                    var name = workDir?.ReadManifest().Name ?? "";
                    response = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["name"] = name, ["version"] = Version });
                    break;
                case "Notify":
                    using (var doc = JsonDocument.Parse(body.Length == 0 ? "{}"u8.ToArray() : body))
                    {
                        var evt = doc.RootElement.TryGetProperty("event", out var e) ? e.GetString() : null;
                        var payload = doc.RootElement.TryGetProperty("payload", out var p) ? p.GetString() ?? "" : "";
                        if (payload.Length > 4096)
                        {
                            throw VmmException.Invalid("payload is larger than 4 KiB");
                        }

                        if (evt == "instance.info" && workDir is not null)
                        {
                            using var info = JsonDocument.Parse(payload);
                            VmWorkDir.WriteAtomic(workDir.SharedFile(VmWorkDir.InstanceInfoFile), Encoding.UTF8.GetBytes(payload));
                        }
                        else if (evt is "boot.progress" or "boot.error" or "shutdown.progress" && id is not null)
                        {
                            vms.RecordGuestEvent(id, evt, payload);
                        }
                    }

                    response = "null"u8.ToArray();
                    break;
                default:
                    throw VmmException.Invalid($"no host API method {method}");
            }

            context.Response.StatusCode = 200;
        }
        catch (Exception e) when (e is VmmException or JsonException or InvalidOperationException)
        {
            response = VmmJson.Error(e.Message);
            context.Response.StatusCode = 400;
        }

        context.Response.ContentType = "application/json";
        context.Response.ContentLength = response.Length;
        await context.Response.Body.WriteAsync(response, context.RequestAborted);
    }

    /// <summary><c>GET /logs?id=&amp;lines=20&amp;follow=false&amp;ch=serial</c>: the last lines of the console log, then (follow) what is appended while the VM runs.</summary>
    private static async Task Logs(HttpContext context, VmManager vms)
    {
        var q = context.Request.Query;
        VmWorkDir workDir;
        try
        {
            workDir = vms.WorkDir(q["id"].ToString());
        }
        catch (VmmException e)
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsync(e.Message + "\n", context.RequestAborted);
            return;
        }

        var path = q["ch"].ToString() switch
        {
            "stdout" => workDir.StdoutLog,
            "stderr" => workDir.StderrLog,
            _ => workDir.SerialLog,
        };
        var lines = int.TryParse(q["lines"], out var n) && n >= 0 ? Math.Min(n, 100_000) : 20;
        var follow = q["follow"].ToString() is "true" or "1";
        context.Response.ContentType = "text/plain; charset=utf-8";
        var ct = context.RequestAborted;
        long offset;
        try
        {
            offset = await WriteTail(context.Response, path, lines, ct);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (!follow)
        {
            return;
        }

        try
        {
            var buffer = new byte[64 * 1024];
            var idle = 0;
            while (!ct.IsCancellationRequested)
            {
                if (File.Exists(path))
                {
                    await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    if (stream.Length < offset)
                    {
                        offset = 0; // restarted VM: the log was truncated
                    }

                    stream.Position = offset;
                    int read;
                    while ((read = await stream.ReadAsync(buffer, ct)) > 0)
                    {
                        await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), ct);
                        offset += read;
                        idle = 0;
                    }

                    await context.Response.Body.FlushAsync(ct);
                }

                // End the stream once the VM is gone and nothing more arrives.
                if (!Directory.Exists(workDir.Path) || (VmProcess.RunningPid(workDir, vms.Options.ProcRoot) is null && ++idle > 4))
                {
                    return;
                }

                await Task.Delay(250, ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // Client went away or the VM was removed.
        }
    }

    private static async Task<long> WriteTail(HttpResponse response, string path, int lines, CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            return 0;
        }

        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var length = stream.Length;
        // Read at most the last 4 MiB to find the last N lines.
        var start = Math.Max(0, length - (4 * 1024 * 1024));
        stream.Position = start;
        var bytes = new byte[length - start];
        await stream.ReadExactlyAsync(bytes, ct);
        var from = bytes.Length;
        var seen = 0;
        for (var k = bytes.Length - 1; k >= 0; k--)
        {
            if (bytes[k] == (byte)'\n' && k != bytes.Length - 1 && ++seen == lines)
            {
                from = k + 1;
                break;
            }

            if (k == 0)
            {
                from = 0;
            }
        }

        if (lines == 0)
        {
            from = bytes.Length;
        }

        await response.Body.WriteAsync(bytes.AsMemory(from), ct);
        return length;
    }

    private static async Task<byte[]> ReadBody(HttpContext context)
    {
        const int Max = 8 * 1024 * 1024;
        if (context.Request.ContentLength > Max)
        {
            throw VmmException.Invalid("request body too large");
        }

        using var memory = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            memory.Write(buffer, 0, read);
            if (memory.Length > Max)
            {
                throw VmmException.Invalid("request body too large");
            }
        }

        if (memory.Length == 0 && HttpMethods.IsGet(context.Request.Method) && context.Request.Query.Count > 0)
        {
            // GET with a query string: each parameter is a field (proto3 JSON accepts numbers and booleans as strings here).
            var fields = context.Request.Query.Where(kv => kv.Key != "json").ToDictionary(kv => kv.Key, kv => kv.Value.ToString());
            return JsonSerializer.SerializeToUtf8Bytes(fields);
        }

        return memory.ToArray();
    }

    private static T Parse<T>(byte[] body)
        where T : new()
    {
        if (body.Length == 0)
        {
            return new T();
        }

        try
        {
            return JsonSerializer.Deserialize<T>(body, VmmJson.Options) ?? new T();
        }
        catch (JsonException e)
        {
            throw VmmException.Invalid($"malformed request: {e.Message}");
        }
    }

    /// <summary>Runs <see cref="VmManager.EnforceStopDeadlinesAsync"/> at start and then every second until the host stops.</summary>
    private sealed class StopDeadlineLoop(VmManager vms) : Microsoft.Extensions.Hosting.BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), vms.Time);
            try
            {
                do
                {
                    try
                    {
                        await vms.EnforceStopDeadlinesAsync(stoppingToken);
                    }
                    catch (Exception e) when (e is VmmException or IOException or UnauthorizedAccessException)
                    {
                        vms.Logger.LogWarning("stop deadlines: {Reason}", e.Message);
                    }
                }
                while (await timer.WaitForNextTickAsync(stoppingToken));
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // The service is stopping; VMs keep running.
            }
        }
    }

    /// <summary>SHA-256 hex, for callers that want GetComposeHash without a server.</summary>
    public static string ComposeHashHex(byte[] compose) => Convert.ToHexStringLower(SHA256.HashData(compose));
}
