using System.Text;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Client.Tests.Support;

namespace PrivateMl.Client.Tests;

public sealed class NodeVerifierTests
{
    private static readonly string[] PassingChecks =
    [
        NodeVerifier.CheckNames.ReportFetch,
        NodeVerifier.CheckNames.ReportFormat,
        NodeVerifier.CheckNames.Collateral,
        DcapVerifier.CheckNames.QuoteSignature,
        DcapVerifier.CheckNames.PckChain,
        "policy.authenticity",
        "policy.simulated",
        "policy.tcb.status",
        "policy.td.debug",
        NodeVerifier.CheckNames.SigningKeyBinding,
        NodeVerifier.CheckNames.NonceBinding,
        "event-log.digests",
        "event-log.rtmr0",
        "event-log.rtmr1",
        "event-log.rtmr2",
        "event-log.rtmr3",
        NodeVerifier.CheckNames.ComposeHash,
        NodeVerifier.CheckNames.PublishedCompose,
        NodeVerifier.CheckNames.MrConfigId,
        NodeVerifier.CheckNames.AppId,
        NodeVerifier.CheckNames.InstanceId,
        NodeVerifier.CheckNames.KeyProvider,
    ];

    [Fact]
    public async Task Verifies_a_seed_proxy_report_built_by_hand_as_SIMULATED_when_allowed()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(result.Trusted, Describe(result));
        Assert.True(result.IsSimulated);
        foreach (var name in PassingChecks)
        {
            Assert.Equal(CheckOutcome.Passed, result.Find(name)?.Outcome);
        }

        Assert.Empty(result.Failures);
        var gpu = result.Find(NodeVerifier.CheckNames.Gpu)!;
        Assert.Equal(CheckOutcome.Skipped, gpu.Outcome);
        Assert.Contains("no GPU evidence", gpu.Detail, StringComparison.Ordinal);
        Assert.Contains("SIMULATED", result.Find("policy.simulated")!.Detail, StringComparison.Ordinal);
        Assert.Equal(node.SigningAddress, result.SigningAddress);
        Assert.Equal(node.ComposeHash, result.AppIdentity!.ComposeHash!.Value.ToArray());
        Assert.Equal(SeedNode.InstanceId, result.AppIdentity.InstanceId!.Value.ToArray());
        Assert.Equal("local-sgx", result.AppIdentity.KeyProviderName);
        Assert.Equal(SeedNode.Now, result.VerifiedAt);
    }

    [Fact]
    public async Task Strict_by_default_fails_on_the_simulated_root_saying_so_while_everything_else_passes()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options(allowSimulated: false)).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        var failure = AssertOnlyFailure(result, "policy.simulated", ErrorCode.SimulatedEvidenceNotTrusted);
        Assert.Contains("SIMULATED", failure.Detail, StringComparison.Ordinal);
        Assert.Equal(CheckOutcome.Passed, result.Find(DcapVerifier.CheckNames.QuoteSignature)!.Outcome);
    }

    [Fact]
    public async Task Each_run_sends_a_fresh_nonce_and_binds_exactly_it()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();
        var verifier = new NodeVerifier(http, node.Options());

        var first = await verifier.VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        var second = await verifier.VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(first.Trusted && second.Trusted);
        Assert.Equal(32, first.Nonce.Length);
        Assert.False(first.Nonce.Span.SequenceEqual(second.Nonce.Span));
        Assert.Equal(first.Nonce.ToArray(), first.Quote!.Quote!.ReportData[32..].ToArray());
    }

    public static TheoryData<string, string, ErrorCode> Attacks => new()
    {
        { nameof(SeedDefects.UnboundKey), NodeVerifier.CheckNames.SigningKeyBinding, ErrorCode.SigningKeyNotBound },
        { nameof(SeedDefects.ReplayedNonce), NodeVerifier.CheckNames.NonceBinding, ErrorCode.NonceMismatch },
        { nameof(SeedDefects.ExtraRtmr3Event), NodeVerifier.CheckNames.EventLogRtmr3, ErrorCode.RtmrReplayMismatch },
        { nameof(SeedDefects.QuoteSignedByOtherKey), DcapVerifier.CheckNames.QuoteSignature, ErrorCode.QuoteSignatureInvalid },
        { nameof(SeedDefects.DebugTd), "policy.td.debug", ErrorCode.DebugTdForbidden },
        { nameof(SeedDefects.PlatformStatus), "policy.tcb.status", ErrorCode.TcbStatusNotAccepted },
        { nameof(SeedDefects.PublishesOtherCompose), NodeVerifier.CheckNames.PublishedCompose, ErrorCode.ComposeHashMismatch },
    };

    [Theory]
    [MemberData(nameof(Attacks))]
    public async Task A_hostile_node_is_caught_by_the_named_check(string attack, string check, ErrorCode code)
    {
        var defects = attack switch
        {
            nameof(SeedDefects.UnboundKey) => new SeedDefects { UnboundKey = true },
            nameof(SeedDefects.ReplayedNonce) => new SeedDefects { ReplayedNonce = true },
            nameof(SeedDefects.ExtraRtmr3Event) => new SeedDefects { ExtraRtmr3Event = true },
            nameof(SeedDefects.QuoteSignedByOtherKey) => new SeedDefects { QuoteSignedByOtherKey = true },
            nameof(SeedDefects.DebugTd) => new SeedDefects { DebugTd = true },
            nameof(SeedDefects.PlatformStatus) => new SeedDefects { PlatformStatus = TcbStatus.OutOfDate },
            nameof(SeedDefects.PublishesOtherCompose) => new SeedDefects { PublishesOtherCompose = true },
            _ => throw new ArgumentOutOfRangeException(nameof(attack)),
        };
        await using var node = new SeedNode(defects);
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Equal(NodeVerdict.Untrusted, result.Verdict);
        var named = result.Find(check);
        Assert.NotNull(named);
        Assert.Equal(CheckOutcome.Failed, named.Outcome);
        Assert.Equal(code, named.Code);
    }

    [Fact]
    public async Task A_swapped_compose_file_fails_the_compose_hash_check()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();
        var other = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(SeedNode.AppCompose).Replace("sha256:0123", "sha256:4567", StringComparison.Ordinal));

        var result = await new NodeVerifier(http, node.Options(expectedCompose: other)).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        AssertOnlyFailure(result, NodeVerifier.CheckNames.ComposeHash, ErrorCode.ComposeHashMismatch);
    }

    [Fact]
    public async Task Without_an_expected_compose_file_the_hash_is_reported_not_compared()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options() with { ExpectedAppCompose = null }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.True(result.Trusted, Describe(result));
        var compose = result.Find(NodeVerifier.CheckNames.ComposeHash)!;
        Assert.Equal(CheckOutcome.Skipped, compose.Outcome);
        Assert.Contains(Convert.ToHexStringLower(node.ComposeHash), compose.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Required_GPU_evidence_that_is_missing_fails()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options() with { RequireGpuEvidence = true }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Equal(ErrorCode.GpuEvidenceMissing, Assert.Single(result.Failures).Code);
    }

    [Theory]
    [InlineData(500)]
    [InlineData(404)]
    public async Task An_HTTP_error_is_a_failed_fetch(int status)
    {
        await using var node = new SeedNode(new SeedDefects { HttpStatus = status });
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        var failure = Assert.Single(result.Checks);
        Assert.Equal(NodeVerifier.CheckNames.ReportFetch, failure.Name);
        Assert.Equal(ErrorCode.ReportUnavailable, failure.Code);
        Assert.Contains(status.ToString(System.Globalization.CultureInfo.InvariantCulture), failure.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_token_the_fetch_fails_with_401()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options() with { ApiKey = null }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.Equal(ErrorCode.ReportUnavailable, Assert.Single(result.Checks).Code);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[]")]
    [InlineData("{\"signing_address\":\"0x00\"}")]
    [InlineData("{\"signing_address\":\"0x00\",\"intel_quote\":\"zz\"}")]
    [InlineData("{\"signing_address\":\"0x00\",\"intel_quote\":\"00\",\"event_log\":5}")]
    public async Task Malformed_reports_fail_the_format_check(string body)
    {
        await using var node = new SeedNode(new SeedDefects { RawBody = body });
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        var format = result.Find(NodeVerifier.CheckNames.ReportFormat)!;
        Assert.Equal(CheckOutcome.Failed, format.Outcome);
        Assert.Equal(ErrorCode.ReportMalformed, format.Code);
    }

    [Fact]
    public async Task A_truncated_quote_fails_quote_format()
    {
        await using var node = new SeedNode();
        var report = Encoding.UTF8.GetString(node.BuildReport(new byte[32]));
        var quoteStart = report.IndexOf("\"intel_quote\":\"", StringComparison.Ordinal) + 15;
        var truncated = report[..(quoteStart + 100)] + report[report.IndexOf('"', quoteStart)..];
        await using var hostile = new SeedNode(new SeedDefects { RawBody = truncated });
        await hostile.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, hostile.Options()).VerifyAsync(hostile.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Equal(DcapVerifier.CheckNames.QuoteFormat, Assert.Single(result.Failures).Name);
    }

    [Fact]
    public async Task Without_collateral_the_quote_is_not_trusted()
    {
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();

        var result = await new NodeVerifier(http, node.Options() with { Collateral = null }).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);

        Assert.False(result.Trusted);
        Assert.Equal(ErrorCode.CollateralUnavailable, result.Find(NodeVerifier.CheckNames.Collateral)!.Code);
    }

    [Fact]
    public async Task An_unreachable_node_is_a_failed_fetch_not_an_exception()
    {
        using var http = new HttpClient();
        var options = new NodeVerifierOptions { Collateral = new NoNetworkCollateral() };

        var result = await new NodeVerifier(http, options).VerifyAsync(new Uri("http://127.0.0.1:1/"), TestContext.Current.CancellationToken);

        Assert.Equal(ErrorCode.ReportUnavailable, Assert.Single(result.Checks).Code);
    }

    internal static string Describe(NodeVerificationResult result) =>
        string.Join("\n", result.Checks.Select(c => $"{c.Outcome} {c.Name}: {c.Detail}"));

    /// <summary>Not trusted, for exactly one failed check: <paramref name="name"/>, with <paramref name="code"/> (returned).</summary>
    internal static CheckResult AssertOnlyFailure(NodeVerificationResult result, string name, ErrorCode code)
    {
        Assert.False(result.Trusted);
        var failure = Assert.Single(result.Failures);
        Assert.Equal((name, code), (failure.Name, failure.Code));
        return failure;
    }
}
