using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using PrivateMl.Agent.Env;
using PrivateMl.Testing;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Vms;

namespace PrivateMl.Vmm.Tests.Support;

/// <summary>The VMM service on a loopback port over a <see cref="VmmSandbox"/>, plus a fake KMS serving signed env keys.</summary>
internal sealed class RunningVmm : IAsyncDisposable
{
    public static readonly byte[] KmsRootK256 = SHA256.HashData("vmm-test-kms-root"u8);
    public static readonly byte[] EnvCryptKey = SHA256.HashData("vmm-test-env-key"u8);

    private RunningVmm(VmmSandbox box, VmManager manager, WebApplication vmm, WebApplication kms)
    {
        Box = box;
        Manager = manager;
        Vmm = vmm;
        Kms = kms;
    }

    public VmmSandbox Box { get; }

    public VmManager Manager { get; }

    public WebApplication Vmm { get; }

    public WebApplication Kms { get; }

    public string Url => Vmm.Urls.First();

    public string KmsUrl => Kms.Urls.First();

    /// <summary>The Authorization header of each request the fake KMS answered ("" when none).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> KmsAuthorizations { get; private init; } = new();

    /// <param name="kmsHttp">The VMM's client for KMS calls (null: its own).</param>
    public static async Task<RunningVmm> StartAsync(CancellationToken ct, Func<VmmOptions, VmmOptions>? configure = null, HttpClient? kmsHttp = null)
    {
        var box = new VmmSandbox();
        var kmsAuthorizations = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var kmsApp = await LoopbackServer.StartAsync(
            kms => kms.MapPost("/prpc/GetAppEnvEncryptPubKey", async (HttpContext context) =>
            {
                kmsAuthorizations.Enqueue(context.Request.Headers.Authorization.ToString());
                using var doc = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
                var appId = Convert.FromHexString(doc.RootElement.GetProperty("app_id").GetString()!);
                return Results.Bytes(AppEnvEncryptPublicKey.Create(KmsRootK256, appId, EnvCryptKey, DateTimeOffset.UtcNow).ToJson(), "application/json");
            }),
            ct);
        var options = box.Options with { KmsUrls = [kmsApp.Urls.First()] };
        options = configure?.Invoke(options) ?? options;
        var manager = new VmManager(options, () => box.NoTdx);
        var app = VmmHost.Build(options, manager, kmsHttp);
        await app.StartAsync(ct);
        return new RunningVmm(box, manager, app, kmsApp) { KmsAuthorizations = kmsAuthorizations };
    }

    public async ValueTask DisposeAsync()
    {
        await Vmm.StopAsync(CancellationToken.None);
        await Vmm.DisposeAsync();
        await Kms.StopAsync(CancellationToken.None);
        await Kms.DisposeAsync();
        Manager.Dispose();
        Box.Dispose();
    }
}
