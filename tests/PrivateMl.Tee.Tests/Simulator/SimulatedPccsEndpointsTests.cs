using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Tee.Tests.Simulator;

public sealed class SimulatedPccsEndpointsTests : IAsyncLifetime
{
    private readonly SimulatedTdxPlatform _platform = Simulators.Platform();
    private WebApplication? _app;
    private HttpClient? _client;

    public async ValueTask InitializeAsync()
    {
        _app = await LoopbackServer.StartAsync(app => app.MapSimulatedPccs(_platform, new ManualClock(Simulators.Now)));
        _client = new HttpClient { BaseAddress = _app.BaseAddress() };
    }

    public async ValueTask DisposeAsync()
    {
        _client?.Dispose();
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }

        _platform.Dispose();
    }

    private string Fmspc => Convert.ToHexStringLower(_platform.Pki.Platform.Fmspc.Span);

    [Theory]
    [InlineData("/tdx/certification/v4/tcb?fmspc={0}", "tcbInfo", "TDX")]
    [InlineData("/sgx/certification/v4/tcb?fmspc={0}", "tcbInfo", "SGX")]
    public async Task Tcb_info_is_served_with_its_issuer_chain_header(string path, string member, string id)
    {
        using var response = await _client!.GetAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, path, Fmspc), TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chain = SimulatedCollateralTests.Chain(Uri.UnescapeDataString(response.Headers.GetValues("TCB-Info-Issuer-Chain").Single()));
        Assert.Equal(_platform.Pki.TcbSigningCertificate.RawData, chain[0].RawData);
        var (raw, signature) = Split(body, member);
        Assert.Contains($"\"id\":\"{id}\"", raw, StringComparison.Ordinal);
        Assert.True(SimulatedCollateralTests.Verifies(chain[0], raw, signature));
    }

    [Theory]
    [InlineData("/tdx/certification/v4/qe/identity", "TD_QE")]
    [InlineData("/sgx/certification/v4/qe/identity", "QE")]
    public async Task Qe_identity_is_served_with_its_issuer_chain_header(string path, string id)
    {
        using var response = await _client!.GetAsync(path, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var chain = SimulatedCollateralTests.Chain(Uri.UnescapeDataString(response.Headers.GetValues("SGX-Enclave-Identity-Issuer-Chain").Single()));
        var (raw, signature) = Split(body, "enclaveIdentity");
        Assert.Contains($"\"id\":\"{id}\"", raw, StringComparison.Ordinal);
        Assert.True(SimulatedCollateralTests.Verifies(chain[0], raw, signature));
    }

    [Fact]
    public async Task Pck_crl_is_served_as_der_or_hex_with_its_issuer_chain()
    {
        var ct = TestContext.Current.CancellationToken;
        using var der = await _client!.GetAsync("/sgx/certification/v4/pckcrl?ca=platform&encoding=der", ct);
        using var hex = await _client.GetAsync("/sgx/certification/v4/pckcrl?ca=platform", ct);

        Assert.Equal(HttpStatusCode.OK, der.StatusCode);
        var derBytes = await der.Content.ReadAsByteArrayAsync(ct);
        Assert.Equal(derBytes, Convert.FromHexString(await hex.Content.ReadAsStringAsync(ct)));
        Assert.True(SimulatedPkiTests.CrlSignatureVerifies(derBytes, _platform.Pki.PckCaCertificate));
        var chain = SimulatedCollateralTests.Chain(Uri.UnescapeDataString(der.Headers.GetValues("SGX-PCK-CRL-Issuer-Chain").Single()));
        Assert.Equal(_platform.Pki.PckCaCertificate.RawData, chain[0].RawData);
        Assert.Equal(_platform.Pki.RootCertificate.RawData, chain[1].RawData);
        CertificateRevocationListBuilder.Load(derBytes, out _);
    }

    [Fact]
    public async Task Root_ca_crl_is_served_at_both_paths()
    {
        var ct = TestContext.Current.CancellationToken;
        var pccs = Convert.FromHexString(await _client!.GetStringAsync("/sgx/certification/v4/rootcacrl", ct));
        var distributionPoint = await _client.GetByteArrayAsync(new Uri(_platform.Pki.RootCaCrlUrl).AbsolutePath, ct);

        Assert.Equal(pccs, distributionPoint);
        Assert.True(SimulatedPkiTests.CrlSignatureVerifies(pccs, _platform.Pki.RootCertificate));
    }

    [Theory]
    [InlineData("/tdx/certification/v4/tcb?fmspc=00112233445", HttpStatusCode.BadRequest)]
    [InlineData("/tdx/certification/v4/tcb", HttpStatusCode.BadRequest)]
    [InlineData("/tdx/certification/v4/tcb?fmspc=zz1122334455", HttpStatusCode.BadRequest)]
    [InlineData("/tdx/certification/v4/tcb?fmspc=001122334455", HttpStatusCode.NotFound)]
    [InlineData("/sgx/certification/v4/pckcrl?ca=processor", HttpStatusCode.NotFound)]
    [InlineData("/sgx/certification/v4/pckcrl?ca=other", HttpStatusCode.BadRequest)]
    [InlineData("/sgx/certification/v4/unknown", HttpStatusCode.NotFound)]
    public async Task Bad_requests_get_4xx(string path, HttpStatusCode expected)
    {
        using var response = await _client!.GetAsync(path, TestContext.Current.CancellationToken);

        Assert.Equal(expected, response.StatusCode);
    }

    [Fact]
    public async Task Collateral_assembled_from_the_routes_verifies_a_quote_under_the_simulated_root()
    {
        var ct = TestContext.Current.CancellationToken;
        using var tcb = await _client!.GetAsync($"/tdx/certification/v4/tcb?fmspc={Fmspc}", ct);
        using var qe = await _client.GetAsync("/tdx/certification/v4/qe/identity", ct);
        using var pckCrl = await _client.GetAsync("/sgx/certification/v4/pckcrl?ca=platform&encoding=der", ct);
        var (tcbInfo, tcbSignature) = Split(await tcb.Content.ReadAsStringAsync(ct), "tcbInfo");
        var (qeIdentity, qeSignature) = Split(await qe.Content.ReadAsStringAsync(ct), "enclaveIdentity");
        var collateral = new PrivateMl.Attestation.Tdx.Collateral.DcapCollateral
        {
            PckCrlIssuerChain = Uri.UnescapeDataString(pckCrl.Headers.GetValues("SGX-PCK-CRL-Issuer-Chain").Single()),
            RootCaCrl = Convert.FromHexString(await _client.GetStringAsync("/sgx/certification/v4/rootcacrl", ct)),
            PckCrl = await pckCrl.Content.ReadAsByteArrayAsync(ct),
            TcbInfoIssuerChain = Uri.UnescapeDataString(tcb.Headers.GetValues("TCB-Info-Issuer-Chain").Single()),
            TcbInfo = tcbInfo,
            TcbInfoSignature = tcbSignature,
            QeIdentityIssuerChain = Uri.UnescapeDataString(qe.Headers.GetValues("SGX-Enclave-Identity-Issuer-Chain").Single()),
            QeIdentity = qeIdentity,
            QeIdentitySignature = qeSignature,
        };
        var quote = _platform.CreateQuote(Simulators.ReportData(42), new byte[48]);
        var verifier = new PrivateMl.Attestation.Tdx.DcapVerifier(new PrivateMl.Attestation.Tdx.DcapVerifierOptions
        {
            TrustedRootCertificate = _platform.Pki.RootCertificate.RawData,
            AllowSimulated = true,
        });

        var result = verifier.Verify(quote, collateral, Simulators.Now);

        Assert.True(result.Accepted, string.Join("\n", result.Checks.Select(c => $"{c.Name}: {c.Outcome} {c.Code} {c.Detail}")));
        Assert.True(result.IsSimulated);
    }

    private static (string Raw, byte[] Signature) Split(string body, string member)
    {
        using var document = JsonDocument.Parse(body);
        var raw = document.RootElement.GetProperty(member).GetRawText();
        var signature = Convert.FromHexString(document.RootElement.GetProperty("signature").GetString()!);
        Assert.Contains(raw, body, StringComparison.Ordinal);
        return (raw, signature);
    }
}
