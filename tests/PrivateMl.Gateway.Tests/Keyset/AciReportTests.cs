using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Attestation.Tdx;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Keyset;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Keyset;

/// <summary>The attested keyset and the <c>format=aci</c> report over the real simulated agent.</summary>
public sealed class AciReportTests : IAsyncLifetime
{
    private GatewayFixture _node = null!;

    public async ValueTask InitializeAsync() => _node = await GatewayFixture.StartAsync(
        o => o.TlsSpkiSha256 = new string('c', 64),
        s => s.AddSingleton<IKeysetContributor>(new FixedContributor(new KeysetKey("extra-1", "x-test-hpke", "abcd"))));

    public async ValueTask DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Aci_report_quote_binds_the_keyset_and_the_nonce()
    {
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var (status, report) = await _node.GetJsonAsync($"/v1/attestation/report?format=aci&nonce={nonce}");
        Assert.Equal(200, status);
        Assert.Equal("aci/1", report.GetProperty("api_version").GetString());
        var attestation = report.GetProperty("attestation");
        var keyset = WorkloadKeyset.Parse(attestation.GetProperty("workload_keyset"));
        Assert.Equal(keyset.Digest, report.GetProperty("workload_keyset_digest").GetString());

        var quote = TdxQuote.Parse(Convert.FromHexString(attestation.GetProperty("evidence").GetProperty("quote").GetString()!));
        Assert.True(AciStatement.Binds(quote.ReportData.Span, keyset, nonce));
        Assert.Equal(Convert.ToHexStringLower(quote.ReportData.Span[..32]), attestation.GetProperty("report_data").GetString());
        Assert.False(AciStatement.Binds(quote.ReportData.Span, keyset, new string('0', 64)));

        // Receipt key = the Ed25519 response-signing key; E2EE keys of both suites and the contributed one; TLS hash.
        Assert.Equal(report.GetProperty("signing_address").GetString(), Assert.Single(keyset.ReceiptSigningKeys).PublicKey);
        Assert.Equal("ed25519", report.GetProperty("signing_algo").GetString());
        Assert.NotNull(AciSuite.X25519.ParsePublicKey(keyset.E2eePublicKeys.Single(k => k.Algo == WorkloadKeyset.X25519Suite).PublicKey));
        Assert.NotNull(AciSuite.Secp256k1.ParsePublicKey(keyset.E2eePublicKeys.Single(k => k.Algo == WorkloadKeyset.Secp256k1Suite).PublicKey));
        Assert.Contains(keyset.E2eePublicKeys, k => k.KeyId == "extra-1");
        Assert.Equal(new string('c', 64), Assert.Single(keyset.TlsPublicKeys).SpkiSha256);
        Assert.True(keyset.NotAfter > DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        Assert.Equal("2", report.GetProperty("service_capabilities").GetProperty("supported_e2ee_versions")[0].GetString());
    }

    [Fact]
    public async Task E2ee_secp256k1_key_is_not_the_ecdsa_signing_key()
    {
        var (_, seed) = await _node.GetJsonAsync($"/v1/attestation/report?nonce={new string('1', 64)}");
        var (_, aci) = await _node.GetJsonAsync($"/v1/attestation/report?format=aci&nonce={new string('1', 64)}");
        var keyset = WorkloadKeyset.Parse(aci.GetProperty("attestation").GetProperty("workload_keyset"));
        var secp = Convert.FromHexString(keyset.E2eePublicKeys.Single(k => k.Algo == WorkloadKeyset.Secp256k1Suite).PublicKey);
        var address = "0x" + Convert.ToHexStringLower(PrivateMl.E2ee.Signing.Eip191.Keccak256(secp.AsSpan(1)))[24..];
        Assert.NotEqual(seed.GetProperty("signing_address").GetString()!.ToLowerInvariant(), address);
    }

    [Fact]
    public async Task Default_format_is_unchanged_and_nonce_less_aci_report_uses_the_null_statement()
    {
        var (_, seed) = await _node.GetJsonAsync($"/v1/attestation/report?nonce={new string('a', 64)}");
        Assert.False(seed.TryGetProperty("api_version", out _));
        var (status, aci) = await _node.GetJsonAsync("/v1/attestation/report?format=aci");
        Assert.Equal(200, status);
        var keyset = WorkloadKeyset.Parse(aci.GetProperty("attestation").GetProperty("workload_keyset"));
        var quote = TdxQuote.Parse(Convert.FromHexString(aci.GetProperty("intel_quote").GetString()!));
        Assert.True(AciStatement.Binds(quote.ReportData.Span, keyset, null));
    }

    [Theory]
    [InlineData("format=aci&nonce=0A0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "invalid_nonce")]
    [InlineData("format=aci&nonce=00", "invalid_nonce")]
    [InlineData("format=other", "invalid_format")]
    public async Task Bad_aci_queries_are_400(string query, string code)
    {
        var (status, body) = await _node.GetJsonAsync("/v1/attestation/report?" + query);
        Assert.Equal(400, status);
        Assert.Equal(code, body.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Agent_derived_keysets_are_stable_across_restarts_and_random_ones_are_not()
    {
        async Task<string> DigestAsync(HttpClient client)
        {
            var (_, r) = await GatewayFixture.GetJsonAsync(client, "/v1/attestation/report?format=aci");
            var set = WorkloadKeyset.Parse(r.GetProperty("attestation").GetProperty("workload_keyset"));
            return string.Join(",", set.E2eePublicKeys.Select(k => k.PublicKey));
        }

        var a = await _node.StartGatewayAsync(o => o.KeySource = SigningKeySource.Agent);
        var b = await _node.StartGatewayAsync(o => o.KeySource = SigningKeySource.Agent);
        Assert.Equal(await DigestAsync(a.Client), await DigestAsync(b.Client));
        Assert.NotEqual(await DigestAsync(_node.Client), await DigestAsync(a.Client));
        var c = await _node.StartGatewayAsync();
        Assert.NotEqual(await DigestAsync(_node.Client), await DigestAsync(c.Client));
    }

    private sealed class FixedContributor(KeysetKey key) : IKeysetContributor
    {
        public Task<IReadOnlyList<KeysetKey>> ContributeAsync(KeysetContext context, CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<KeysetKey>>([key]);
    }
}
