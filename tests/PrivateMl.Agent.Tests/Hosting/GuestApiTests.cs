using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Testing;
using static PrivateMl.Agent.Tests.AgentFixture;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>Each DstackGuest and Tappd method over the Unix sockets, checked against what it must mean.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class GuestApiTests : IAsyncLifetime
{
    private AgentFixture _agent = null!;

    public async ValueTask InitializeAsync() => _agent = await StartAsync();

    public async ValueTask DisposeAsync() => await _agent.DisposeAsync();

    [Fact]
    public async Task GetQuote_CarriesExactReportData_AndLogReplaysToQuote()
    {
        var reportData = RandomBytes(40);
        var (status, body) = await _agent.PostAsync("/GetQuote", $"{{\"report_data\":\"0x{Hex(reportData)}\"}}");

        Assert.Equal(200, status);
        var expected = new byte[64];
        reportData.CopyTo(expected, 0);
        Assert.Equal(Hex(expected), body.GetProperty("report_data").GetString());
        var quote = TdxQuote.Parse(Convert.FromHexString(body.GetProperty("quote").GetString()!));
        Assert.Equal(expected, quote.ReportData.ToArray());

        var events = TdxEventLog.Parse(body.GetProperty("event_log").GetString()!);
        var replayed = RtmrReplay.Replay(events);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(quote.TdReport!.Rtmrs[i].ToArray(), replayed[i].ToArray());
        }

        Assert.Equal(_agent.Options.VmConfig, body.GetProperty("vm_config").GetString());
        Assert.Equal(["quote", "event_log", "report_data", "vm_config"], body.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task GetQuote_VerifiesWithDcapVerifier_AgainstSimulatorCollateral_AsSimulated()
    {
        var (_, body) = await _agent.PostAsync("/GetQuote", "{\"report_data\":\"0102\"}");
        var quote = Convert.FromHexString(body.GetProperty("quote").GetString()!);
        var verifier = new DcapVerifier(new DcapVerifierOptions
        {
            TrustedRootCertificate = _agent.Simulator.Platform.Pki.RootCertificate.RawData,
            AllowSimulated = true,
        });

        var result = verifier.Verify(quote, _agent.Simulator.CreateCollateral(), DateTimeOffset.UtcNow);

        Assert.True(result.Accepted, string.Join("; ", result.Checks.Where(c => c.Outcome != PrivateMl.Attestation.Verification.CheckOutcome.Passed)));
        Assert.True(result.IsSimulated);

        // And never under the default (Intel) trust anchor.
        Assert.False(new DcapVerifier().Verify(quote, _agent.Simulator.CreateCollateral(), DateTimeOffset.UtcNow).Accepted);
    }

    [Fact]
    public async Task GetQuote_LikeDstacksRustClients_QueryJsonWithoutContentType()
    {
        using var content = new ByteArrayContent("{\"report_data\":\"0x0badf00d\"}"u8.ToArray());
        using var response = await _agent.Dstack.PostAsync("/GetQuote?json", content, TestContext.Current.CancellationToken);
        var (status, body) = await ReadAsync(response);
        Assert.Equal(200, status);
        Assert.StartsWith("0badf00d00", body.GetProperty("report_data").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_TcbInfo_IsSerdePrettyPrinted()
    {
        var (_, info) = await _agent.PostAsync("/Info", "{}");
        var tcbInfo = info.GetProperty("tcb_info").GetString()!;
        Assert.StartsWith("{\n  \"app_compose\": \"", tcbInfo, StringComparison.Ordinal);
        Assert.Contains("\n  \"event_log\": [\n    {\n      \"imr\": 0,", tcbInfo, StringComparison.Ordinal);
        Assert.EndsWith("\"\n}", tcbInfo, StringComparison.Ordinal);
        Assert.DoesNotContain("\r", tcbInfo, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetQuote_ByGetQueryString()
    {
        using var response = await _agent.Dstack.GetAsync("/GetQuote?report_data=0xabcd", TestContext.Current.CancellationToken);
        var (status, body) = await ReadAsync(response);
        Assert.Equal(200, status);
        Assert.StartsWith("abcd0000", body.GetProperty("report_data").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task BootSequence_IsMeasuredIntoRtmr3_AndInfoReportsIt()
    {
        var (status, info) = await _agent.PostAsync("/Info", "{}");
        Assert.Equal(200, status);

        var compose = await File.ReadAllBytesAsync(Path.Combine(_agent.Options.StateDirectory, "app-compose.json"), TestContext.Current.CancellationToken);
        var composeHash = SHA256.HashData(compose);
        Assert.Equal(Hex(composeHash), info.GetProperty("compose_hash").GetString());
        Assert.Equal(Hex(composeHash.AsSpan(0, 20)), info.GetProperty("app_id").GetString());
        Assert.Equal(40, info.GetProperty("instance_id").GetString()!.Length);
        Assert.Equal("privateml-agent", info.GetProperty("app_name").GetString());
        Assert.StartsWith("{\"name\":\"local\",\"id\":\"3059", info.GetProperty("key_provider_info").GetString(), StringComparison.Ordinal);
        Assert.Contains("-----BEGIN CERTIFICATE-----", info.GetProperty("app_cert").GetString(), StringComparison.Ordinal);

        using var tcb = JsonDocument.Parse(info.GetProperty("tcb_info").GetString()!);
        var tcbNames = tcb.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(tcbNames.Order(StringComparer.Ordinal), tcbNames);
        Assert.Equal(Encoding.UTF8.GetString(compose), tcb.RootElement.GetProperty("app_compose").GetString());
        var events = TdxEventLog.Parse(tcb.RootElement.GetProperty("event_log").GetRawText());
        Assert.Equal(
            ["system-preparing", "app-id", "compose-hash", "instance-id", "boot-mr-done", "key-provider", "system-ready"],
            events.Where(e => e.Imr == 3).Select(e => e.Event));
        Assert.Equal(RtmrReplay.Replay(events).ToHex(3), tcb.RootElement.GetProperty("rtmr3").GetString());
        Assert.Equal(96, tcb.RootElement.GetProperty("mrtd").GetString()!.Length);
        Assert.Equal(64, info.GetProperty("device_id").GetString()!.Length);
        Assert.Equal(tcb.RootElement.GetProperty("mr_aggregated").GetString(), info.GetProperty("mr_aggregated").GetString());
    }

    [Fact]
    public async Task EmitEvent_ExtendsRtmr3_AndAppendsTheLog()
    {
        var (status, body) = await _agent.PostAsync("/EmitEvent", "{\"event\":\"model-loaded\",\"payload\":\"68656c6c6f\"}");
        Assert.Equal(200, status);
        Assert.Equal(JsonValueKind.Null, body.ValueKind);

        var (_, quoteBody) = await _agent.PostAsync("/GetQuote", "{}");
        var events = TdxEventLog.Parse(quoteBody.GetProperty("event_log").GetString()!);
        var last = events[^1];
        Assert.Equal("model-loaded", last.Event);
        Assert.Equal("hello"u8.ToArray(), last.EventPayload.ToArray());
        Assert.Equal(TdxEvent.ComputeRuntimeDigest("model-loaded", "hello"u8), last.Digest.ToArray());
        var quote = TdxQuote.Parse(Convert.FromHexString(quoteBody.GetProperty("quote").GetString()!));
        Assert.Equal(quote.TdReport!.Rtmr3.ToArray(), RtmrReplay.Replay(events).Rtmr3.ToArray());
    }

    [Theory]
    [InlineData("secp256k1")]
    [InlineData("ed25519")]
    public async Task GetKey_ChainRecoversToTheKeyProviderRoot(string algorithm)
    {
        var (status, body) = await _agent.PostAsync("/GetKey", $"{{\"path\":\"/wallet/0\",\"purpose\":\"signing\",\"algorithm\":\"{algorithm}\"}}");
        Assert.Equal(200, status);
        var key = Convert.FromHexString(body.GetProperty("key").GetString()!);
        var chain = body.GetProperty("signature_chain").EnumerateArray().Select(e => Convert.FromHexString(e.GetString()!)).ToArray();
        Assert.Equal(32, key.Length);
        Assert.Equal(2, chain.Length);

        byte[] publicKey = algorithm == "ed25519"
            ? NSec.Cryptography.Key.Import(NSec.Cryptography.SignatureAlgorithm.Ed25519, key, NSec.Cryptography.KeyBlobFormat.RawPrivateKey)
                .PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey)
            : Secp256k1.CompressedPublicKey(key);
        var appPub = Secp256k1.Recover(Hashes.Keccak256(Encoding.UTF8.GetBytes("signing:" + Hex(publicKey))), chain[0]);
        Assert.NotNull(appPub);

        var (_, info) = await _agent.PostAsync("/Info", "{}");
        var appId = Convert.FromHexString(info.GetProperty("app_id").GetString()!);
        var rootPub = Secp256k1.Recover(Hashes.Keccak256([.. "dstack-kms-issued:"u8, .. appId, .. appPub!]), chain[1]);
        using var provider = LocalKeyProvider.OpenOrCreate(_agent.Options.StateDirectory, RandomNumberGenerator.Create(), TimeProvider.System);
        Assert.Equal(provider.RootK256PublicKey, rootPub);

        // Deterministic: the same path gives the same key.
        var (_, again) = await _agent.PostAsync("/GetKey", $"{{\"path\":\"/wallet/0\",\"purpose\":\"signing\",\"algorithm\":\"{algorithm}\"}}");
        Assert.Equal(body.GetProperty("key").GetString(), again.GetProperty("key").GetString());
    }

    [Theory]
    [InlineData("secp256k1", "68656c6c6f")]
    [InlineData("secp256k1_prehashed", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")]
    [InlineData("ed25519", "68656c6c6f")]
    public async Task Sign_ThenVerify(string algorithm, string dataHex)
    {
        var (status, signed) = await _agent.PostAsync("/Sign", $"{{\"algorithm\":\"{algorithm}\",\"data\":\"{dataHex}\"}}");
        Assert.Equal(200, status);
        var signature = signed.GetProperty("signature").GetString()!;
        var publicKey = signed.GetProperty("public_key").GetString()!;
        Assert.Equal(3, signed.GetProperty("signature_chain").GetArrayLength());
        Assert.Equal(signature, signed.GetProperty("signature_chain")[0].GetString());

        var (_, verified) = await _agent.PostAsync("/Verify", $"{{\"algorithm\":\"{algorithm}\",\"data\":\"{dataHex}\",\"signature\":\"{signature}\",\"public_key\":\"{publicKey}\"}}");
        Assert.True(verified.GetProperty("valid").GetBoolean());

        var tampered = (signature[0] == '0' ? "1" : "0") + signature[1..];
        var (_, rejected) = await _agent.PostAsync("/Verify", $"{{\"algorithm\":\"{algorithm}\",\"data\":\"{dataHex}\",\"signature\":\"{tampered}\",\"public_key\":\"{publicKey}\"}}");
        Assert.False(rejected.GetProperty("valid").GetBoolean());
    }

    [Fact]
    public async Task GetTlsKey_RaTls_CertificateBindsQuoteToKey_AndChainsToRoot()
    {
        var (status, body) = await _agent.PostAsync("/GetTlsKey",
            "{\"subject\":\"app.example\",\"alt_names\":[\"app.example\",\"*.app.example\"],\"usage_ra_tls\":true,\"usage_server_auth\":true,\"usage_client_auth\":false}");
        Assert.Equal(200, status);
        using var key = ECDsa.Create();
        key.ImportFromPem(body.GetProperty("key").GetString());
        var pems = body.GetProperty("certificate_chain").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(3, pems.Length);
        using var leaf = X509Certificate2.CreateFromPem(pems[0]);
        using var appCa = X509Certificate2.CreateFromPem(pems[1]);
        using var root = X509Certificate2.CreateFromPem(pems[2]);

        Assert.Equal(key.ExportSubjectPublicKeyInfo(), leaf.PublicKey.ExportSubjectPublicKeyInfo());
        Assert.Equal("CN=app.example", leaf.Subject);
        var quote = TdxQuote.Parse(CertificateFactory.ReadOctetStringExtension(leaf, RaTlsOids.Quote)!);
        Assert.Equal(SHA512.HashData([.. "ratls-cert:"u8, .. leaf.PublicKey.ExportSubjectPublicKeyInfo()]), quote.ReportData.ToArray());
        Assert.NotNull(CertificateFactory.ReadOctetStringExtension(leaf, RaTlsOids.EventLog));
        Assert.Equal("app:custom"u8.ToArray(), CertificateFactory.ReadOctetStringExtension(leaf, RaTlsOids.CertUsage));

        var (built, chainStatus) = CustomRootChain.Build(leaf, root, [appCa]);
        Assert.True(built, chainStatus);
    }

    [Fact]
    public async Task GetTlsKey_IsFreshEveryCall_AndHonoursValidity()
    {
        var (_, first) = await _agent.PostAsync("/GetTlsKey", "{\"subject\":\"a\",\"not_before\":1700000000,\"not_after\":1800000000}");
        var (_, second) = await _agent.PostAsync("/GetTlsKey", "{\"subject\":\"a\"}");
        Assert.NotEqual(first.GetProperty("key").GetString(), second.GetProperty("key").GetString());
        using var leaf = X509Certificate2.CreateFromPem(first.GetProperty("certificate_chain")[0].GetString());
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000), new DateTimeOffset(leaf.NotBefore.ToUniversalTime()));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1800000000), new DateTimeOffset(leaf.NotAfter.ToUniversalTime()));
    }

    [Fact]
    public async Task Version_ReportsApiLevel()
    {
        var (status, body) = await _agent.PostAsync("/Version", "{}");
        Assert.Equal(200, status);
        Assert.Equal(_agent.Options.ApiVersion, body.GetProperty("version").GetString());
        Assert.StartsWith("privateml:", body.GetProperty("rev").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/prpc/Tappd.TdxQuote")]
    [InlineData("/prpc/TdxQuote")]
    public async Task Tappd_TdxQuote_HashesTagAndContent(string path)
    {
        var content = "test content"u8.ToArray();
        var (status, body) = await PostAsync(_agent.Tappd, path, $"{{\"report_data\":\"{Hex(content)}\"}}");
        Assert.Equal(200, status);
        Assert.Equal("sha512", body.GetProperty("hash_algorithm").GetString());
        Assert.Equal("app-data", body.GetProperty("prefix").GetString());
        var quote = TdxQuote.Parse(Convert.FromHexString(body.GetProperty("quote").GetString()!));
        Assert.Equal(SHA512.HashData("app-data:test content"u8), quote.ReportData.ToArray());
    }

    [Fact]
    public async Task Tappd_TdxQuote_Keccak256IsZeroPadded()
    {
        var (_, body) = await PostAsync(_agent.Tappd, "/prpc/Tappd.TdxQuote", $"{{\"report_data\":\"{Hex("test content"u8)}\",\"hash_algorithm\":\"keccak256\"}}");
        var quote = TdxQuote.Parse(Convert.FromHexString(body.GetProperty("quote").GetString()!));
        Assert.Equal("71d9e489e5d4046e8c1a5ef5137a88d940c77db95de9a5eadcde469c4fc50c29" + new string('0', 64), Hex(quote.ReportData.Span));
    }

    [Fact]
    public async Task Tappd_RawQuote_NeedsExactly64Bytes()
    {
        var raw = RandomBytes(64);
        var (status, body) = await PostAsync(_agent.Tappd, "/prpc/Tappd.TdxQuote", $"{{\"report_data\":\"{Hex(raw)}\",\"hash_algorithm\":\"raw\"}}");
        Assert.Equal(200, status);
        Assert.Equal(raw, TdxQuote.Parse(Convert.FromHexString(body.GetProperty("quote").GetString()!)).ReportData.ToArray());
        Assert.Equal("", body.GetProperty("prefix").GetString());

        var (shortStatus, _) = await PostAsync(_agent.Tappd, "/prpc/Tappd.RawQuote", $"{{\"report_data\":\"{Hex(raw.AsSpan(0, 63))}\"}}");
        Assert.Equal(400, shortStatus);
    }

    [Fact]
    public async Task Tappd_DeriveKey_IsDeterministic_AndMatchesGuestDerivation()
    {
        var (status, first) = await PostAsync(_agent.Tappd, "/prpc/Tappd.DeriveKey", "{\"path\":\"/\",\"subject\":\"tappd\"}");
        var (_, second) = await PostAsync(_agent.Tappd, "/prpc/Tappd.DeriveKey", "{\"path\":\"/\",\"subject\":\"tappd\"}");
        Assert.Equal(200, status);
        Assert.Equal(first.GetProperty("key").GetString(), second.GetProperty("key").GetString());
        var (_, other) = await PostAsync(_agent.Tappd, "/prpc/Tappd.DeriveKey", "{\"path\":\"/other\"}");
        Assert.NotEqual(first.GetProperty("key").GetString(), other.GetProperty("key").GetString());
    }

    [Fact]
    public async Task Tappd_InfoAndDeriveK256Key()
    {
        var (status, info) = await PostAsync(_agent.Tappd, "/prpc/Tappd.Info", "{}");
        Assert.Equal(200, status);
        var (_, dstackInfo) = await _agent.PostAsync("/Info", "{}");
        Assert.Equal(dstackInfo.GetProperty("app_id").GetString(), info.GetProperty("app_id").GetString());

        var (_, k256) = await PostAsync(_agent.Tappd, "/prpc/Tappd.DeriveK256Key", "{\"path\":\"p\",\"purpose\":\"q\"}");
        var (_, getKey) = await _agent.PostAsync("/GetKey", "{\"path\":\"p\",\"purpose\":\"q\"}");
        Assert.Equal(getKey.GetProperty("key").GetString(), k256.GetProperty("k256_key").GetString());
    }

    [Fact]
    public async Task Sockets_AreWorldAccessible()
    {
        Assert.Equal((UnixFileMode)0x1FF, File.GetUnixFileMode(_agent.Options.SocketPath!));
        Assert.Equal((UnixFileMode)0x1FF, File.GetUnixFileMode(_agent.Options.TappdSocketPath!));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task StateFiles_AreOwnerOnly()
    {
        foreach (var name in new[] { LocalKeyProvider.RootK256File, LocalKeyProvider.RootCaKeyFile })
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_agent.Options.StateDirectory, name)));
        }

        await Task.CompletedTask;
    }
}
