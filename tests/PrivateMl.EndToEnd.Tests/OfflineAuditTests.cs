using System.Text;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client;
using PrivateMl.EndToEnd.Tests.Support;

namespace PrivateMl.EndToEnd.Tests;

/// <summary>
/// An auditor's view, after the fact: the client kept the evidence bundle of its attestation and the receipt of an
/// answer; with the node, the KMS and the network gone, both re-verify offline and still tie the answer to the app's
/// attested key — and a bundle whose report was given another signing key does not.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OfflineAuditTests
{
    private static readonly string Compose = SimulatedDeployment.Compose("e2e-audit");

    [Fact]
    public async Task A_kept_bundle_and_receipt_verify_offline_after_the_deployment_is_gone()
    {
        var ct = TestContext.Current.CancellationToken;
        byte[] bundle;
        byte[] receipt;
        byte[] request;
        byte[] response;
        string attestedAddress;
        NodeVerifierOptions options;
        await using (var deployment = await SimulatedDeployment.StartAsync())
        {
            await using var node = await deployment.BootAsync(Compose);
            using var http = new HttpClient();
            options = deployment.VerifierOptions(expectedCompose: Compose);
            var attested = await new NodeVerifier(http, options).VerifyAsync(node.BaseAddress, ct);
            Assert.True(attested.Trusted, Describe.Checks(attested));
            request = VerifiedChat.RequestBody(SimulatedDeployment.Model, "audit me later", stream: true);
            var answer = await new VerifiedChat(http, node.BaseAddress).SendAsync(request, attested.SigningAddress!, "ecdsa", null, ct);
            Assert.True(answer.Verified, Describe.Checks(answer));
            bundle = EvidenceBundle.Write(attested);
            receipt = Encoding.UTF8.GetBytes(answer.ReceiptJson!);
            response = answer.ResponseBytes;
            attestedAddress = attested.SigningAddress!;
        }

        using var offline = new HttpClient(new NoNetworkHandler());
        var audited = await new NodeVerifier(offline, options with { Collateral = null }).VerifyBundleAsync(EvidenceBundle.Parse(bundle), ct);

        Assert.True(audited.Trusted, Describe.Checks(audited));
        Assert.Equal(attestedAddress, audited.SigningAddress);
        Assert.Equal(CheckOutcome.Passed, audited.Find(NodeVerifier.CheckNames.ComposeHash)!.Outcome);
        Assert.All(ReceiptVerifier.Verify(receipt, audited.SigningAddress, request, response), c => Assert.Equal(CheckOutcome.Passed, c.Outcome));
    }

    [Fact]
    public async Task A_bundle_whose_report_names_another_signing_key_is_refused()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var deployment = await SimulatedDeployment.StartAsync();
        await using var node = await deployment.BootAsync(Compose);
        await using var other = await deployment.BootAsync(SimulatedDeployment.Compose("e2e-audit-other"));
        using var http = new HttpClient();
        var attested = await new NodeVerifier(http, deployment.VerifierOptions()).VerifyAsync(node.BaseAddress, ct);
        var otherAddress = (await new NodeVerifier(http, deployment.VerifierOptions()).VerifyAsync(other.BaseAddress, ct)).SigningAddress!;
        var kept = EvidenceBundle.From(attested);
        var forged = kept with { ReportJson = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(kept.ReportJson.Span).Replace(attested.SigningAddress!, otherAddress, StringComparison.Ordinal)) };
        Assert.NotEqual(kept.ReportJson.ToArray(), forged.ReportJson.ToArray());

        var audited = await new NodeVerifier(http, deployment.VerifierOptions()).VerifyBundleAsync(forged, ct);

        Assert.False(audited.Trusted);
        Assert.Equal(CheckOutcome.Failed, audited.Find(NodeVerifier.CheckNames.SigningKeyBinding)!.Outcome);
    }

    /// <summary>Fails every request: proves the audit needs no network.</summary>
    private sealed class NoNetworkHandler : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            throw new InvalidOperationException($"offline: no request may leave ({request.RequestUri})");
    }
}
