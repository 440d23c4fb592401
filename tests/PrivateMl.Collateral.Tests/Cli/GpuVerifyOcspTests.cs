using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Attestation.Nvidia;
using PrivateMl.Attestation.Trust;
using PrivateMl.Cli;
using PrivateMl.Collateral.Tests.Nvidia;
using PrivateMl.Tee.Simulator.Gpu;

namespace PrivateMl.Collateral.Tests.Cli;

/// <summary><c>privateml gpu verify --ocsp-url URL</c> with simulated evidence against the loopback OCSP responder.</summary>
public sealed class GpuVerifyOcspTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("privateml-ocspcli-").FullName;
    private readonly SimulatedGpuEvidenceSource _gpus = new(1);
    private readonly ECDsa _rootKey = ECDsa.Create();
    private readonly X509Certificate2 _root = X509CertificateLoader.LoadCertificate(NvidiaSimulatedRootCa.Der);
    private readonly byte[] _nonce = RandomNumberGenerator.GetBytes(32);
    private TestOcspResponder _responder = null!;
    private string _payloadFile = null!;

    public async ValueTask InitializeAsync()
    {
        _responder = await TestOcspResponder.StartAsync();
        _rootKey.ImportFromPem(SimulatedGpu.SimulatedRootKeyPem);
        var payload = await _gpus.GetEvidenceAsync(_nonce, TestContext.Current.CancellationToken);
        using var chain = GpuCertificateChain.Parse(payload.Items[0].CertificateChainPem);
        _responder.Know(chain.Certificates[1], _root, _rootKey);
        _payloadFile = Path.Combine(_directory, "payload.json");
        await File.WriteAllTextAsync(_payloadFile, payload.ToJson(), TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _responder.DisposeAsync();
        _gpus.Dispose();
        _rootKey.Dispose();
        _root.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task GoodAnswer_Exits0_RevokedExits1_AndTheResponderWasAsked()
    {
        _responder.Now = DateTimeOffset.UtcNow;
        var good = await Run("--ocsp-url", _responder.Url.ToString());
        _responder.Answer = OcspAnswer.Revoked;
        var revoked = await Run("--ocsp-url", _responder.Url.ToString());

        Assert.Empty(_responder.Errors);
        Assert.Equal(0, good);
        Assert.Equal(1, revoked);
        Assert.Equal(2, _responder.Requests.Count);
    }

    [Fact]
    public async Task WithoutOcsp_TheSameEvidence_IsAccepted_AndNothingIsAsked()
    {
        Assert.Equal(0, await Run());
        Assert.Empty(_responder.Requests);
    }

    [Theory]
    [InlineData("--ocsp-url", "ftp://127.0.0.1/")]
    [InlineData("--ocsp-url", "not a url")]
    [InlineData("--ocsp", "--offline")]
    public async Task Exits2_ForBadOcspOptions(string option, string value)
    {
        Assert.Equal(2, await Run(option, value));
        Assert.Empty(_responder.Requests);
    }

    private Task<int> Run(params string[] extra) =>
        Program.BuildRoot()
            .Parse(["gpu", "verify", _payloadFile, "--nonce", Convert.ToHexStringLower(_nonce), "--allow-simulated", .. extra])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
}
