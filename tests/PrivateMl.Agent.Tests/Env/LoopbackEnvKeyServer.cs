using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Testing;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>
/// A real HTTP endpoint on loopback that answers <c>POST /prpc/GetAppEnvEncryptPubKey?json</c> the way dstack's KMS
/// does, from the same signer the KMS uses (<see cref="AppEnvEncryptPublicKey.Create"/>) — a stand-in until the
/// KMS service exists. Shared by the Agent and CLI tests (linked source).
/// </summary>
internal sealed class LoopbackEnvKeyServer : IAsyncDisposable
{
    /// <summary>dstack's test root CA scalar (research/dstack.md §6.7 A7) and the §6.3 synthetic root k256 key.</summary>
    public static readonly byte[] TestRootCaScalar = Convert.FromHexString("f57527cea4ab7ffb49af99b158cdc0e3ec06398f528349ea236b7d2afe19cec1");
    public static readonly byte[] TestRootK256 = SHA256.HashData("dstack-report-test-k256-root"u8);

    private readonly WebApplication _app;

    private LoopbackEnvKeyServer(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    /// <summary>Base URL (no /prpc).</summary>
    public Uri Url { get; }

    /// <summary>The compressed root k256 public key a client must trust.</summary>
    public static byte[] TrustedSigner => EnvEncryptPublicKeySignature.SignerPublicKey(TestRootK256);

    public static byte[] EnvCryptKey(byte[] appId) => AppKeyDerivation.EnvCryptKey(TestRootCaScalar, appId);

    /// <summary>Serves what a KMS with <paramref name="rootK256"/> (default: the test root) would, timestamped by <paramref name="clock"/>.</summary>
    public static Task<LoopbackEnvKeyServer> StartSignedAsync(TimeProvider clock, byte[]? rootK256 = null) =>
        StartAsync(appId => AppEnvEncryptPublicKey.Create(rootK256 ?? TestRootK256, appId, EnvCryptKey(appId), clock.GetUtcNow()).ToJson());

    /// <summary>Serves <paramref name="respond"/>(app_id) with status 200, or 400 for a request without a 20-byte app_id.</summary>
    public static async Task<LoopbackEnvKeyServer> StartAsync(Func<byte[], byte[]> respond)
    {
        var app = await LoopbackServer.StartAsync(server => server.MapPost("/prpc/GetAppEnvEncryptPubKey", async (HttpContext context) =>
        {
            byte[]? appId = null;
            try
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
                var hex = body.RootElement.GetProperty("app_id").GetString() ?? "";
                appId = Convert.FromHexString(hex.StartsWith("0x", StringComparison.Ordinal) ? hex[2..] : hex);
            }
            catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
            }

            context.Response.ContentType = "application/json";
            if (appId is not { Length: 20 } || !context.Request.Query.ContainsKey("json"))
            {
                context.Response.StatusCode = 400;
                await context.Response.WriteAsync("{\"error\": \"bad request\"}");
                return;
            }

            var bytes = respond(appId);
            context.Response.ContentLength = bytes.Length;
            await context.Response.Body.WriteAsync(bytes);
        }));
        return new LoopbackEnvKeyServer(app, app.BaseAddress());
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
