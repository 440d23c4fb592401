using System.Text;
using PrivateMl.Client;
using PrivateMl.Client.E2ee.Ehbp;
using PrivateMl.EndToEnd.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.EndToEnd.Tests;

/// <summary>
/// End-to-end encryption to a node whose keys come from the KMS: the client attests the workload keyset (ACI report
/// format), encrypts the prompt to it (EHBP), and nothing readable crosses the link; the E2EE keys, like the signing
/// keys, are derived through the agent from the app key, so a rebooted guest attests the same ones.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class E2eeTests
{
    private const string Prompt = "e2e-secret-prompt-7d41";
    private static readonly string Compose = SimulatedDeployment.Compose("e2e-sealed");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_ehbp_chat_to_a_kms_keyed_node_verifies_and_crosses_the_link_sealed(bool stream)
    {
        var ct = TestContext.Current.CancellationToken;
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        await using var capture = new LoopbackCapture(node.BaseAddress);
        using var http = new HttpClient();
        var attested = await new NodeVerifier(http, deployment.VerifierOptions() with { ReportFormat = NodeReportFormat.Aci }).VerifyAsync(node.BaseAddress, ct);
        Assert.True(attested.Trusted, Describe.Checks(attested));
        Assert.NotNull(attested.Keyset);
        using var ehbp = await EhbpChatTransport.ConnectAsync(attested, capture.BaseAddress, apiKey: null, cancellationToken: ct);
        var request = VerifiedChat.RequestBody(SimulatedDeployment.Model, Prompt, stream);

        var answer = await ehbp.Chat.SendAsync(request, attested.SigningAddress!, attested.Report!.SigningAlgo, cancellationToken: ct);

        Assert.True(answer.Verified, Describe.Checks(answer));
        Assert.Equal(stream ? SimulatedDeployment.StreamedContent : SimulatedDeployment.Answer, answer.Content);
        Assert.Equal(request, Assert.Single(deployment.Upstream.Received).Value);
        var wire = Encoding.Latin1.GetString(capture.BothDirections());
        foreach (var secret in new[] { Prompt, SimulatedDeployment.Answer, "tok1", "\"messages\"", "chat.completion" })
        {
            Assert.DoesNotContain(secret, wire, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_rebooted_guest_attests_the_same_e2ee_and_receipt_keys()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var deployment = await SimulatedDeployment.StartAsync();
        using var http = new HttpClient();
        var options = deployment.VerifierOptions() with { ReportFormat = NodeReportFormat.Aci };
        var node = await deployment.BootAsync(Compose);
        NodeVerificationResult before;
        await using (node)
        {
            before = await new NodeVerifier(http, options).VerifyAsync(node.BaseAddress, ct);
        }

        await using var again = await deployment.RebootAsync(node);
        var after = await new NodeVerifier(http, options).VerifyAsync(again.BaseAddress, ct);

        Assert.True(before.Trusted, Describe.Checks(before));
        Assert.True(after.Trusted, Describe.Checks(after));
        Assert.NotEmpty(before.Keyset!.E2eePublicKeys);
        Assert.Equal(before.Keyset.E2eePublicKeys, after.Keyset!.E2eePublicKeys);
        Assert.Equal(before.Keyset.ReceiptSigningKeys, after.Keyset.ReceiptSigningKeys);
    }
}
