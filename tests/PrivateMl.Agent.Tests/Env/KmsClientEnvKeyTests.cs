using System.Security.Cryptography;
using PrivateMl.Agent.Env;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>Fetching the env key with <see cref="KmsClient"/> over real HTTP on loopback, as vmm-cli.py does, and the trust decision on the answer.</summary>
public sealed class KmsClientEnvKeyTests
{
    private static readonly byte[] AppId = Convert.FromHexString("ea549f02e1a25fabd1cb788380e033ec5461b2ff");

    [Fact]
    public async Task Fetch_ThenVerify_AcceptsKeySignedByTrustedRoot()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        using var http = new HttpClient();
        var answer = await Fetch(http, kms.Url, AppId);

        // §6.3: the env public key of dstack's test root for this app.
        Assert.Equal("31ac3ac9e0ee08cfa00f34483c7a81ba5d6b28de1c85f8529f9ce9591e3f8244", Convert.ToHexStringLower(answer.PublicKey));
        var verdict = answer.Verify(AppId, [LoopbackEnvKeyServer.TrustedSigner], DateTimeOffset.UtcNow);
        Assert.True(verdict.Accepted, verdict.Reason);
        Assert.True(verdict.Timestamped);
    }

    [Fact]
    public async Task Fetch_FromKmsWithAnotherRoot_IsNotTrusted()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System, SHA256.HashData("rogue"u8));
        using var http = new HttpClient();
        var answer = await Fetch(http, new Uri(kms.Url, "/prpc/"), AppId);
        Assert.Equal(ErrorCode.EnvPublicKeySignerUntrusted, answer.Verify(AppId, [LoopbackEnvKeyServer.TrustedSigner], DateTimeOffset.UtcNow).Code);
    }

    [Fact]
    public async Task Fetch_ErrorStatus_IsKmsClientException_WithKmsText()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        using var http = new HttpClient();
        var error = await Assert.ThrowsAsync<KmsClientException>(() =>
            Fetch(http, kms.Url, new byte[3]));
        Assert.Contains("bad request", error.Message, StringComparison.Ordinal);
        Assert.Equal(400, error.StatusCode);
    }

    [Fact]
    public async Task Fetch_OversizedAnswer_IsTypedError()
    {
        await using var kms = await LoopbackEnvKeyServer.StartAsync(_ => new byte[AppEnvEncryptPublicKey.MaxJsonBytes + 1]);
        using var http = new HttpClient();
        var error = await Assert.ThrowsAsync<KmsClientException>(() => Fetch(http, kms.Url, AppId));
        Assert.Contains($"larger than {AppEnvEncryptPublicKey.MaxJsonBytes} bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fetch_MalformedAnswer_IsAttestationException()
    {
        await using var kms = await LoopbackEnvKeyServer.StartAsync(_ => "{\"public_key\":\"zz\"}"u8.ToArray());
        using var http = new HttpClient();
        var error = await Assert.ThrowsAsync<AttestationException>(() => Fetch(http, kms.Url, AppId));
        Assert.Equal(ErrorCode.MalformedInput, error.Code);
    }

    [Theory]
    [InlineData("https://kms.example:8000", "https://kms.example:8000/prpc/GetAppEnvEncryptPubKey?json")]
    [InlineData("https://kms.example:8000/", "https://kms.example:8000/prpc/GetAppEnvEncryptPubKey?json")]
    [InlineData("https://kms.example:8000/prpc", "https://kms.example:8000/prpc/GetAppEnvEncryptPubKey?json")]
    [InlineData("http://127.0.0.1:9/base/prpc/", "http://127.0.0.1:9/base/prpc/GetAppEnvEncryptPubKey?json")]
    public void MethodUri_AppendsPrpcOnce(string baseUrl, string expected)
    {
        Assert.Equal(expected, KmsClient.MethodUri(new Uri(baseUrl), "GetAppEnvEncryptPubKey").ToString());
    }

    private static async Task<AppEnvEncryptPublicKey> Fetch(HttpClient http, Uri url, byte[] appId)
    {
        using var client = new KmsClient(http, url, AppEnvEncryptPublicKey.MaxJsonBytes);
        return await client.GetAppEnvEncryptPubKeyAsync(appId, TestContext.Current.CancellationToken);
    }
}
