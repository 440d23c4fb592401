using System.Security.Cryptography;
using PrivateMl.Agent.Env;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>Fetching the env key over real HTTP on loopback, as vmm-cli.py does, and the trust decision on the answer.</summary>
public sealed class KmsEnvKeyClientTests
{
    private static readonly byte[] AppId = Convert.FromHexString("ea549f02e1a25fabd1cb788380e033ec5461b2ff");

    [Fact]
    public async Task Fetch_ThenVerify_AcceptsKeySignedByTrustedRoot()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        using var http = new HttpClient();
        var answer = await new KmsEnvKeyClient(http).GetAppEnvEncryptPubKeyAsync(kms.Url, AppId, TestContext.Current.CancellationToken);

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
        var answer = await new KmsEnvKeyClient(http).GetAppEnvEncryptPubKeyAsync(new Uri(kms.Url, "/prpc/"), AppId, TestContext.Current.CancellationToken);
        Assert.Equal(ErrorCode.EnvPublicKeySignerUntrusted, answer.Verify(AppId, [LoopbackEnvKeyServer.TrustedSigner], DateTimeOffset.UtcNow).Code);
    }

    [Fact]
    public async Task Fetch_ErrorStatus_IsHttpRequestException_WithKmsText()
    {
        await using var kms = await LoopbackEnvKeyServer.StartSignedAsync(TimeProvider.System);
        using var http = new HttpClient();
        var error = await Assert.ThrowsAsync<HttpRequestException>(() =>
            new KmsEnvKeyClient(http).GetAppEnvEncryptPubKeyAsync(kms.Url, new byte[3], TestContext.Current.CancellationToken));
        Assert.Contains("bad request", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fetch_OversizedAnswer_IsTypedError()
    {
        await using var kms = await LoopbackEnvKeyServer.StartAsync(_ => new byte[AppEnvEncryptPublicKey.MaxJsonBytes + 1]);
        using var http = new HttpClient();
        var error = await Assert.ThrowsAsync<AttestationException>(() =>
            new KmsEnvKeyClient(http).GetAppEnvEncryptPubKeyAsync(kms.Url, AppId, TestContext.Current.CancellationToken));
        Assert.Equal(ErrorCode.MalformedInput, error.Code);
    }

    [Theory]
    [InlineData("https://kms.example:8000", "https://kms.example:8000/prpc/GetAppEnvEncryptPubKey?json")]
    [InlineData("https://kms.example:8000/", "https://kms.example:8000/prpc/GetAppEnvEncryptPubKey?json")]
    [InlineData("https://kms.example:8000/prpc", "https://kms.example:8000/prpc/GetAppEnvEncryptPubKey?json")]
    [InlineData("http://127.0.0.1:9/base/prpc/", "http://127.0.0.1:9/base/prpc/GetAppEnvEncryptPubKey?json")]
    public void MethodUri_AppendsPrpcOnce(string baseUrl, string expected)
    {
        Assert.Equal(expected, KmsEnvKeyClient.MethodUri(new Uri(baseUrl), "GetAppEnvEncryptPubKey").ToString());
    }
}
