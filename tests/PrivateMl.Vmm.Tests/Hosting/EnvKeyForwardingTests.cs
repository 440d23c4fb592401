using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Agent.Env;
using PrivateMl.Kms.Keys;
using PrivateMl.Testing;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.Hosting;

/// <summary>
/// <c>GetAppEnvEncryptPubKey</c> through the VMM (what deploy and update-env use without --kms-url): each configured
/// <c>kms_urls</c> entry is asked in order until one answers, against real loopback servers; closed ports are held bound
/// but not listening, so they refuse at once and cannot be taken.
/// </summary>
public sealed class EnvKeyForwardingTests
{
    private static readonly byte[] AppId = SHA256.HashData("env-key-forwarding"u8)[..20];

    [Fact]
    public async Task AClosedPort_ThenAnHttpError_ArePassedOver_ForTheNextKmsKey()
    {
        var ct = TestContext.Current.CancellationToken;
        using var closed = new RefusingPort();
        await using var vmm = await RunningVmm.StartAsync(ct, o => o with { KmsUrls = [Http(closed), $"{o.KmsUrls[0]}/not-a-kms", o.KmsUrls[0]] });

        var (status, body) = await AskAsync(vmm, ct);

        Assert.Equal(200, status);
        var key = AppEnvEncryptPublicKey.Parse(body);
        Assert.Equal(EncryptedEnv.PublicKeyOf(RunningVmm.EnvCryptKey), key.PublicKey);
        Assert.True(key.Verify(AppId, [KmsRootPublicKey()], DateTimeOffset.UtcNow).Accepted);
    }

    [Fact]
    public async Task ARealKms_OverItsOwnTls_GivesItsSignedKey_AfterAClosedPort()
    {
        var ct = TestContext.Current.CancellationToken;
        var directory = Directory.CreateTempSubdirectory("pml-vmm-envkey-").FullName;
        try
        {
            var state = Path.Combine(directory, "kms");
            await using var kms = await RunningKms.StartAsync(Path.Combine(directory, "tdx-simulator"), state, ct);
            using var closed = new RefusingPort();
            await using var vmm = await RunningVmm.StartAsync(ct, o => o with { KmsUrls = [closed.HttpsUrl.ToString(), kms.Url] });

            var (status, body) = await AskAsync(vmm, ct);

            Assert.Equal(200, status);
            using var roots = KmsRootKeys.Open(state);
            var key = AppEnvEncryptPublicKey.Parse(body);
            Assert.Equal(EncryptedEnv.PublicKeyOf(roots.EnvCryptKey(AppId, 1)), key.PublicKey);
            Assert.True(key.Verify(AppId, [roots.K256PublicKey], DateTimeOffset.UtcNow).Accepted);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task EveryKmsFailing_IsAnError_NamingEachUrlInOrder_WithWhy()
    {
        var ct = TestContext.Current.CancellationToken;
        using var closed = new RefusingPort();
        await using var silent = await LoopbackServer.StartAsync(app => app.MapPost("/prpc/GetAppEnvEncryptPubKey", (HttpContext context) => Task.Delay(Timeout.Infinite, context.RequestAborted)), ct);
        await using var notJson = await LoopbackServer.StartAsync(app => app.MapPost("/prpc/GetAppEnvEncryptPubKey", () => Results.Text("[1,2]", "application/json")), ct);
        var refusing = await LoopbackServer.StartAsync(app => app.MapPost("/prpc/GetAppEnvEncryptPubKey", () => Results.Json(new { error = "app not allowed" }, statusCode: 400)), ct);
        await using var _ = refusing;
        string[] urls = [Http(closed), silent.Urls.First(), notJson.Urls.First(), refusing.Urls.First(), "not a url"];
        using var kmsHttp = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        await using var vmm = await RunningVmm.StartAsync(ct, o => o with { KmsUrls = urls }, kmsHttp);

        var (status, body) = await AskAsync(vmm, ct);

        Assert.Equal(400, status);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!;
        Assert.StartsWith("no KMS gave the app's env public key (5 tried, in order): ", error, StringComparison.Ordinal);
        string[] reasons =
        [
            $"KMS {urls[0]}: Connection refused",
            $"KMS {urls[1]}: no answer within 1 s",
            $"KMS {urls[2]}: answered something other than a JSON object",
            $"KMS {urls[3]}: answered 400: app not allowed",
            $"KMS {urls[4]}: not an http(s) URL",
        ];
        var at = reasons.Select(r => error.IndexOf(r, StringComparison.Ordinal)).ToArray();
        Assert.All(at, i => Assert.True(i > 0, error));
        Assert.Equal(at.Order(), at);
        Assert.Empty(vmm.KmsAuthorizations);
    }

    [Fact]
    public async Task OneKms_ItsOwnErrorIsReported()
    {
        var ct = TestContext.Current.CancellationToken;
        using var closed = new RefusingPort();
        await using var vmm = await RunningVmm.StartAsync(ct, o => o with { KmsUrls = [Http(closed)] });

        var (status, body) = await AskAsync(vmm, ct);

        Assert.Equal(400, status);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!;
        Assert.StartsWith($"KMS {Http(closed)}: Connection refused", error, StringComparison.Ordinal);
    }

    /// <summary>The fake KMS's root k256 public key, compressed (the signer a client trusts).</summary>
    private static byte[] KmsRootPublicKey()
    {
        using var key = ECDsa.Create(new ECParameters { Curve = ECCurve.CreateFromFriendlyName("secp256k1"), D = RunningVmm.KmsRootK256 });
        var q = key.ExportParameters(false).Q;
        return [(byte)(2 + (q.Y![^1] & 1)), .. q.X!];
    }

    private static string Http(RefusingPort port) => $"http://127.0.0.1:{port.Port}";

    private static async Task<(int Status, byte[] Body)> AskAsync(RunningVmm vmm, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = new Uri(vmm.Url) };
        using var response = await http.PostAsJsonAsync("/prpc/GetAppEnvEncryptPubKey?json", new Dictionary<string, string> { ["app_id"] = Convert.ToHexStringLower(AppId) }, ct);
        return ((int)response.StatusCode, await response.Content.ReadAsByteArrayAsync(ct));
    }
}
