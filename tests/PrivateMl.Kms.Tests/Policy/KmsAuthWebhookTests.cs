using System.Net;
using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.Tests.Support;

namespace PrivateMl.Kms.Tests.Policy;

/// <summary>dstack's auth API: <c>POST {url}/bootAuth/app</c> with BootInfo; the KMS releases keys only on <c>isAllowed: true</c>.</summary>
public sealed class KmsAuthWebhookTests
{
    private static readonly KmsPolicy WebhookPolicy = new() { Webhook = new Uri("http://auth.test/") };

    [Fact]
    public async Task Webhook_Allows_AndSuppliesGatewayAppId_GivenDstacksBootInfo()
    {
        var handler = new FakeAuth("{\"isAllowed\":true,\"gatewayAppId\":\"gw-1\",\"reason\":\"\"}");
        await using var bed = await KmsTestbed.StartAsync(WebhookPolicy, webhook: new HttpClient(handler));
        using var cvm = await bed.BootCvmAsync();
        using var response = await bed.GetAppKeyAsync(cvm);
        Assert.Equal("gw-1", response.RootElement.GetProperty("gateway_app_id").GetString());
        Assert.Equal("http://auth.test/bootAuth/app", handler.Url);

        using var bootInfo = JsonDocument.Parse(handler.Body!);
        var root = bootInfo.RootElement;
        Assert.Equal(Convert.ToHexStringLower(cvm.AppId), root.GetProperty("appId").GetString());
        Assert.Equal(Convert.ToHexStringLower(cvm.ComposeHash), root.GetProperty("composeHash").GetString());
        Assert.Equal(Convert.ToHexStringLower(cvm.InstanceId), root.GetProperty("instanceId").GetString());
        Assert.Equal("UpToDate", root.GetProperty("tcbStatus").GetString());
        foreach (var name in new[] { "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrAggregated", "osImageHash", "mrSystem", "deviceId", "keyProviderInfo", "eventLog", "advisoryIds" })
        {
            Assert.True(root.TryGetProperty(name, out _), name);
        }
    }

    [Fact]
    public async Task Rejects_WhenTheWebhookDenies()
    {
        await using var bed = await KmsTestbed.StartAsync(WebhookPolicy, webhook: new HttpClient(new FakeAuth("{\"isAllowed\":false,\"reason\":\"not registered\"}")));
        Assert.Equal(ErrorCode.KmsAuthDenied, await bed.RefusalForNewCvmAsync());
    }

    [Fact]
    public async Task Rejects_WhenTheWebhookAnswersNonsense()
    {
        await using var bed = await KmsTestbed.StartAsync(WebhookPolicy, webhook: new HttpClient(new FakeAuth("<html>", HttpStatusCode.OK)));
        Assert.Equal(ErrorCode.KmsAuthUnavailable, await bed.RefusalForNewCvmAsync());
    }

    [Fact]
    public void PolicyFile_RejectsUnknownFieldsAndBadLengths()
    {
        Assert.Equal(ErrorCode.PolicyInvalid, Assert.Throws<AttestationException>(() => KmsPolicy.Parse("{\"appIdz\":[]}")).Code);
        Assert.Equal(ErrorCode.PolicyInvalid, Assert.Throws<AttestationException>(() => KmsPolicy.Parse("{\"composeHashes\":[\"00\"]}")).Code);
        Assert.Equal(ErrorCode.PolicyInvalid, Assert.Throws<AttestationException>(() => KmsPolicy.Parse("{\"acceptedTcbStatuses\":[\"Revoked\"]}")).Code);
        var policy = KmsPolicy.Parse("{\"acceptedTcbStatuses\":[\"UpToDate\",\"SWHardeningNeeded\"],\"freshnessSeconds\":null,\"appIds\":[\"0x" + new string('a', 40) + "\"],\"replicas\":{\"composeHashes\":[]}}");
        Assert.Null(policy.FreshnessWindow);
        Assert.Contains(TcbStatus.SWHardeningNeeded, policy.AcceptedTcbStatuses);
        Assert.Single(policy.AppIds!);
        Assert.Empty(policy.Replicas!.ComposeHashes!);
    }

    private sealed class FakeAuth(string answer, HttpStatusCode status = HttpStatusCode.OK) : HttpMessageHandler
    {
        public string? Url { get; private set; }

        public string? Body { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Url = request.RequestUri!.ToString();
            Body = await request.Content!.ReadAsStringAsync(cancellationToken);
            return new HttpResponseMessage(status) { Content = new StringContent(answer, Encoding.UTF8, "application/json") };
        }
    }
}
