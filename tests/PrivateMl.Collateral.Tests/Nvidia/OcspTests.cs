using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Org.BouncyCastle.Asn1.Ocsp;
using Org.BouncyCastle.Ocsp;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral.Nvidia;
using PrivateMl.Tee.Simulator.Gpu;

namespace PrivateMl.Collateral.Tests.Nvidia;

/// <summary>
/// Online OCSP of GPU device chains against a real OCSP responder on loopback (BouncyCastle, over a test CA shaped
/// like NVIDIA's): requests are fetched by <see cref="NvidiaOcspClient"/> and judged by <see cref="GpuOcsp"/>, each
/// outcome a typed, named check.
/// </summary>
public sealed class OcspTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private TestOcspResponder _responder = null!;
    private TestDeviceCa _ca = null!;
    private HttpClient _http = null!;

    public async ValueTask InitializeAsync()
    {
        _responder = await TestOcspResponder.StartAsync();
        _responder.Now = Now;
        _ca = new TestDeviceCa(_responder.Url, Now.AddYears(-1), Now.AddYears(5));
        var chain = _ca.ChainLeafFirst;
        foreach (var i in GpuOcsp.CheckedIndices(chain.Count))
        {
            _responder.Know(chain[i], chain[i + 1], _ca.KeyOf(chain[i + 1]));
        }

        _http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        _ca.Dispose();
        await _responder.DisposeAsync();
    }

    [Fact]
    public async Task Good_FromTheAiaResponder_Passes_ForEachIntermediate()
    {
        var check = await CheckAsync();

        Assert.Equal(CheckOutcome.Passed, check.Outcome);
        Assert.Equal(GpuEvidenceVerifier.CheckNames.Ocsp, check.Name);
        Assert.Contains("certificate 1 good", check.Detail, StringComparison.Ordinal);
        Assert.Contains("3 good", check.Detail, StringComparison.Ordinal);
        Assert.Equal(3, _responder.Requests.Count);
    }

    [Fact]
    public async Task Requests_AreDer_WithASha384CertId_AndAFresh32ByteNonce()
    {
        await CheckAsync();
        await CheckAsync();

        var requests = _responder.Requests.Select(r => new OcspReq(r)).ToList();
        Assert.Equal(6, requests.Count);
        var nonces = requests.Select(r => Convert.ToHexString(Asn1OctetStringOf(r))).ToList();
        Assert.All(nonces, n => Assert.Equal(GpuOcsp.NonceSize * 2, n.Length));
        Assert.Equal(nonces.Count, nonces.Distinct().Count());
        Assert.All(requests, r => Assert.Equal("2.16.840.1.101.3.4.2.2", r.GetRequestList().Single().GetCertID().HashAlgOid));
    }

    [Theory]
    [InlineData(OcspAnswer.Revoked, ErrorCode.OcspCertificateRevoked)]
    [InlineData(OcspAnswer.OnHold, ErrorCode.OcspCertificateRevoked)]
    [InlineData(OcspAnswer.Unknown, ErrorCode.OcspCertificateStatusUnknown)]
    [InlineData(OcspAnswer.BadSignature, ErrorCode.OcspSignatureInvalid)]
    [InlineData(OcspAnswer.ForeignResponder, ErrorCode.OcspResponderUntrusted)]
    [InlineData(OcspAnswer.Stale, ErrorCode.OcspResponseStale)]
    [InlineData(OcspAnswer.NoNonce, ErrorCode.OcspNonceMismatch)]
    [InlineData(OcspAnswer.HttpError, ErrorCode.OcspResponderUnavailable)]
    public async Task EachBadAnswer_FailsTheCheck_WithItsOwnCode(OcspAnswer answer, ErrorCode expected)
    {
        _responder.Answer = answer;

        var check = await CheckAsync();

        Assert.Equal(CheckOutcome.Failed, check.Outcome);
        Assert.Equal(expected, check.Code);
        Assert.StartsWith("certificate 1 ", check.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CertificateHold_IsAccepted_OnlyWhenAllowed()
    {
        _responder.Answer = OcspAnswer.OnHold;
        var responses = await new NvidiaOcspClient(_http).FetchAsync(Payload(_ca.ChainLeafFirst), TestContext.Current.CancellationToken);

        var strict = GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now);
        var allowed = GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now, allowCertificateHold: true);

        Assert.Equal(ErrorCode.OcspCertificateRevoked, strict.Code);
        Assert.Contains("certificateHold", strict.Detail, StringComparison.Ordinal);
        Assert.Equal(CheckOutcome.Passed, allowed.Outcome);
    }

    [Fact]
    public async Task StaleOnlyAtTheVerificationTime_ThatIsInjected()
    {
        var responses = await new NvidiaOcspClient(_http).FetchAsync(Payload(_ca.ChainLeafFirst), TestContext.Current.CancellationToken);

        Assert.Equal(CheckOutcome.Passed, GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now.AddHours(3)).Outcome);
        Assert.Equal(ErrorCode.OcspResponseStale, GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now.AddHours(5)).Code);
        Assert.Equal(ErrorCode.OcspResponseStale, GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now.AddHours(-1)).Code);
    }

    [Fact]
    public async Task DelegatedResponder_IssuedUnderTheRoot_WithOcspSigning_IsTrusted_UntilItExpires()
    {
        _responder.Delegate = _ca.IssueResponder(_ca.Root, Now.AddDays(-1), Now.AddDays(1));

        var check = await CheckAsync();
        var responses = await new NvidiaOcspClient(_http).FetchAsync(Payload(_ca.ChainLeafFirst), TestContext.Current.CancellationToken);
        var later = GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now.AddDays(1).AddMinutes(1));

        Assert.Equal(CheckOutcome.Passed, check.Outcome);
        Assert.Equal(ErrorCode.OcspResponderUntrusted, later.Code);
        _responder.Delegate.Value.Key.Dispose();
        _responder.Delegate.Value.Certificate.Dispose();
    }

    [Fact]
    public async Task UnreachableResponder_IsResponderUnavailable()
    {
        var closed = new Uri($"http://127.0.0.1:{ClosedPort()}/");
        var responses = await new NvidiaOcspClient(_http, closed).FetchAsync(Payload(_ca.ChainLeafFirst), TestContext.Current.CancellationToken);

        var check = GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now);

        Assert.Equal(ErrorCode.OcspResponderUnavailable, check.Code);
        Assert.Contains("unreachable", check.Detail, StringComparison.Ordinal);
        Assert.All(responses.Exchanges, e => Assert.Equal(closed, e.Responder));
    }

    [Fact]
    public async Task AnAnswerAboutAnotherCertificate_IsAMismatch_AndGarbageIsMalformed()
    {
        var chain = _ca.ChainLeafFirst;
        var signedByIssuers = await new NvidiaOcspClient(_http).FetchAsync(Payload(chain), TestContext.Current.CancellationToken);
        var (delegateCertificate, delegateKey) = _ca.IssueResponder(_ca.Root, Now.AddDays(-1), Now.AddDays(1));
        _responder.Delegate = (delegateCertificate, delegateKey);
        using var certificateScope = delegateCertificate;
        using var keyScope = delegateKey;
        var signedByDelegate = await new NvidiaOcspClient(_http).FetchAsync(Payload(chain), TestContext.Current.CancellationToken);
        GpuOcspResponses Swap(GpuOcspResponses fetched)
        {
            var swapped = new GpuOcspResponses();
            var forTwo = fetched.Find(chain[2])!;
            swapped.Add(fetched.Find(chain[1])! with { Response = forTwo.Response, Nonce = forTwo.Nonce });
            return swapped;
        }

        // Cert 2's answer offered for cert 1: signed by the wrong issuer, or (from a responder trusted for both) naming another certificate.
        var wrongSigner = GpuOcsp.CheckChain(chain, Swap(signedByIssuers), _ca.Root, Now);
        var mismatch = GpuOcsp.CheckChain(chain, Swap(signedByDelegate), _ca.Root, Now);
        var forOne = signedByIssuers.Find(chain[1])!;
        var garbage = GpuOcsp.VerifyResponse([0x30, 0x03, 0x0A, 0x01, 0x00], chain[1], chain[2], chain.Skip(2).Take(2).ToList(), _ca.Root, forOne.Nonce, Now);
        var empty = GpuOcsp.VerifyResponse([], chain[1], chain[2], [], _ca.Root, forOne.Nonce, Now);
        var missing = GpuOcsp.CheckChain(chain, new GpuOcspResponses(), _ca.Root, Now);

        Assert.Equal(ErrorCode.OcspSignatureInvalid, wrongSigner.Code);
        Assert.Equal(ErrorCode.OcspResponseMismatch, mismatch.Code);
        Assert.Equal(ErrorCode.OcspResponseMalformed, garbage.Error);
        Assert.Equal(ErrorCode.OcspResponseMalformed, empty.Error);
        Assert.Equal(ErrorCode.OcspResponseMissing, missing.Code);
    }

    [Fact]
    public void RandomBytes_NeverThrow_AndAreMalformed()
    {
        var chain = _ca.ChainLeafFirst;
        var random = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var bytes = new byte[random.Next(1, 400)];
            random.NextBytes(bytes);
            bytes[0] = 0x30;
            var result = GpuOcsp.VerifyResponse(bytes, chain[1], chain[2], [chain[3]], _ca.Root, new byte[32], Now);
            Assert.NotNull(result.Error);
        }
    }

    [Fact]
    public async Task SimulatedGpu_EndToEnd_ThroughTheVerifier_GoodPasses_RevokedRejects_OfflineIsNotChecked()
    {
        using var gpus = new SimulatedGpuEvidenceSource(1);
        var nonce = RandomNumberGenerator.GetBytes(32);
        var payload = await gpus.GetEvidenceAsync(nonce, TestContext.Current.CancellationToken);
        using var chain = GpuCertificateChain.Parse(payload.Items[0].CertificateChainPem);
        using var rootKey = ECDsa.Create();
        rootKey.ImportFromPem(SimulatedGpu.SimulatedRootKeyPem);
        _responder.Know(chain.Certificates[1], chain.Certificates[2], rootKey);
        _responder.Now = DateTimeOffset.UtcNow;
        var client = new NvidiaOcspClient(_http, _responder.Url);
        var verifier = new GpuEvidenceVerifier(new GpuVerifierOptions { AllowSimulated = true });
        var now = DateTimeOffset.UtcNow;

        var goodAnswers = await client.FetchAsync(payload, TestContext.Current.CancellationToken);
        _responder.Answer = OcspAnswer.Revoked;
        var revokedAnswers = await client.FetchAsync(payload, TestContext.Current.CancellationToken);
        var good = verifier.Verify(payload, nonce, now, gpus.CreateRims(), goodAnswers);
        var revoked = verifier.Verify(payload, nonce, now, gpus.CreateRims(), revokedAnswers);
        var offline = verifier.Verify(payload, nonce, now, gpus.CreateRims());

        Assert.True(good.Accepted, good.FirstFailure?.Detail);
        Assert.Equal(CheckOutcome.Passed, good.Gpus[0].Find(GpuEvidenceVerifier.CheckNames.Ocsp)!.Outcome);
        Assert.False(revoked.Accepted);
        Assert.Equal(ErrorCode.OcspCertificateRevoked, revoked.Error);
        Assert.Equal(CheckOutcome.Skipped, offline.Gpus[0].Find(GpuEvidenceVerifier.CheckNames.Ocsp)!.Outcome);
        Assert.Contains("not checked", offline.Gpus[0].Find(GpuEvidenceVerifier.CheckNames.Ocsp)!.Detail, StringComparison.Ordinal);
    }

    private async Task<CheckResult> CheckAsync()
    {
        var responses = await new NvidiaOcspClient(_http).FetchAsync(Payload(_ca.ChainLeafFirst), TestContext.Current.CancellationToken);
        return GpuOcsp.CheckChain(_ca.ChainLeafFirst, responses, _ca.Root, Now);
    }

    /// <summary>A payload carrying only a chain (the OCSP client reads nothing else).</summary>
    private static GpuEvidencePayload Payload(IReadOnlyList<X509Certificate2> chain) => new()
    {
        Nonce = new string('0', 64),
        Arch = GpuArchitecture.Hopper,
        Items =
        [
            new GpuEvidenceItem
            {
                Arch = GpuArchitecture.Hopper,
                Evidence = [],
                CertificateChainPem = System.Text.Encoding.ASCII.GetBytes(string.Concat(chain.Select(c => PemEncoding.WriteString("CERTIFICATE", c.RawData) + "\n"))),
            },
        ],
    };

    private static byte[] Asn1OctetStringOf(OcspReq request)
    {
        var value = request.RequestExtensions.GetExtension(OcspObjectIdentifiers.PkixOcspNonce).Value.GetOctets();
        return ((Org.BouncyCastle.Asn1.Asn1OctetString)Org.BouncyCastle.Asn1.Asn1Object.FromByteArray(value)).GetOctets();
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
