using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.Tests.Support;
using PrivateMl.Tee.Simulator;

namespace PrivateMl.Kms.Tests.RaTls;

/// <summary>
/// The acceptance's refusal list, each over a real TLS handshake on loopback against a --simulate KMS: every request
/// is refused with its named code, and the same CVM with a well-formed certificate gets keys (so each refusal is
/// caused by the one defect).
/// </summary>
public sealed class RaTlsRefusalTests
{
    [Fact]
    public async Task Accepts_WellFormedRaTlsCertificate()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var response = await bed.GetAppKeyAsync(cvm, w => w.WriteNumber("api_version", 1));
        Assert.Equal(32, KmsClient.Hex(response.RootElement, "disk_crypt_key").Length);
        Assert.Equal(1u, response.RootElement.GetProperty("epoch").GetUInt32());
    }

    [Fact]
    public async Task Rejects_NoClientCertificate()
    {
        await using var bed = await KmsTestbed.StartAsync();
        Assert.Equal(ErrorCode.KmsClientCertificateRequired, await bed.RefusalAsync(null));
    }

    [Fact]
    public async Task Rejects_QuoteFromUntrustedRoot()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var foreign = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions { Profile = SimulatedBoot.Profile() }, bed.Clock.GetUtcNow());
        using var cvm = await SimulatedCvm.BootAsync(foreign, bed.Clock, KmsTestbed.AppCompose);
        Assert.Equal(ErrorCode.KmsQuoteUntrusted, await bed.GetAppKeyRefusalAsync(cvm));
    }

    [Fact]
    public async Task Rejects_ReportDataNotBindingCertificateKey()
    {
        Assert.Equal(ErrorCode.KmsQuoteNotBoundToCertificate, await CertificateRefusalAsync(TimeSpan.FromMinutes(-1), TimeSpan.FromMinutes(10), quoteAnotherKey: true));
    }

    [Fact]
    public async Task Rejects_DebugTd()
    {
        Assert.Equal(ErrorCode.KmsDebugTdForbidden, await CertificateRefusalAsync(TimeSpan.FromMinutes(-1), TimeSpan.FromMinutes(10), debugTd: true));
    }

    [Fact]
    public async Task Rejects_OutOfDateTcb_UnderDefaultPolicy()
    {
        var outOfDate = SimulatedCollateralOptions.Default with
        {
            TcbInfo = SimulatedCollateralOptions.Default.TcbInfo with { Levels = TcbInfoOptions.LevelsForPlatformStatus(TcbStatus.OutOfDate) },
        };
        await using var bed = await KmsTestbed.StartAsync(collateral: outOfDate);
        Assert.Equal(ErrorCode.KmsTcbNotAccepted, await bed.RefusalForNewCvmAsync());
    }

    [Fact]
    public async Task Rejects_ComposeHashNotInPolicy()
    {
        await using var bed = await KmsTestbed.StartAsync(new KmsPolicy { ComposeHashes = [SHA256.HashData("another compose"u8)] });
        Assert.Equal(ErrorCode.KmsComposeHashNotAllowed, await bed.RefusalForNewCvmAsync());
    }

    [Fact]
    public async Task Rejects_OsImageNotInPolicy()
    {
        var profile = SimulatedBoot.Profile();
        var otherImage = new KmsOsImage(new byte[32], profile.MrTd.ToArray(), profile.Rtmr0.ToArray(), profile.Rtmr1.ToArray(), SHA384.HashData("another kernel"u8));
        await using var bed = await KmsTestbed.StartAsync(new KmsPolicy { OsImages = [otherImage] });
        Assert.Equal(ErrorCode.KmsOsImageNotAllowed, await bed.RefusalForNewCvmAsync());
    }

    [Fact]
    public async Task Accepts_OsImageAndComposeHashInPolicy_AndReportsTheImage()
    {
        var profile = SimulatedBoot.Profile();
        var imageHash = SHA256.HashData("simulated image"u8);
        var image = new KmsOsImage(imageHash, profile.MrTd.ToArray(), profile.Rtmr0.ToArray(), profile.Rtmr1.ToArray(), profile.Rtmr2.ToArray());
        var composeHash = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(KmsTestbed.AppCompose));
        await using var bed = await KmsTestbed.StartAsync(new KmsPolicy { OsImages = [image], ComposeHashes = [composeHash] });
        using var cvm = await bed.BootCvmAsync();
        using var response = await bed.GetAppKeyAsync(cvm);
        Assert.Equal(imageHash, KmsClient.Hex(response.RootElement, "os_image_hash"));
    }

    [Fact]
    public async Task Rejects_ExpiredCertificate()
    {
        Assert.Equal(ErrorCode.KmsClientCertificateExpired, await CertificateRefusalAsync(TimeSpan.FromMinutes(-30), TimeSpan.FromMinutes(-20)));
    }

    [Fact]
    public async Task Rejects_QuoteOlderThanFreshnessWindow()
    {
        Assert.Equal(ErrorCode.KmsQuoteStale, await CertificateRefusalAsync(TimeSpan.FromHours(-1), TimeSpan.FromHours(1)));
    }

    [Fact]
    public async Task Rejects_ReplayedQuote_InRedatedCertificate_AfterWindow()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var evidence = cvm.Evidence(CertificateFactory.RaTlsReportData(key));
        var start = bed.Clock.GetUtcNow();
        using (var first = SimulatedCvm.Certificate(key, evidence, start.AddMinutes(-1), start.AddHours(2)))
        using (var accepted = await bed.CallAsync("GetAppKey", first))
        {
            Assert.True(accepted.RootElement.TryGetProperty("k256_key", out _));
        }

        bed.Clock.Now = start.AddMinutes(30);
        var later = bed.Clock.GetUtcNow();
        using var redated = SimulatedCvm.Certificate(key, evidence, later.AddMinutes(-1), later.AddHours(1));
        Assert.Equal(ErrorCode.KmsQuoteStale, await bed.RefusalAsync(redated));
    }

    [Fact]
    public async Task Rejects_KeyProviderNamingAnotherKms()
    {
        await using var bed = await KmsTestbed.StartAsync();
        Assert.Equal(ErrorCode.KmsKeyProviderMismatch, await bed.RefusalForNewCvmAsync(keyProvider: "{\"name\":\"kms\",\"id\":\"3059\"}"));
    }

    [Fact]
    public async Task Rejects_CertificateWithoutQuote()
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var now = bed.Clock.GetUtcNow();
        using var self = CertificateFactory.CreateRootCa(key, "Test", "no quote", now.AddHours(1));
        using var certificate = ECDsaCertificateExtensions.CopyWithPrivateKey(self, key);
        Assert.Equal(ErrorCode.KmsRaTlsExtensionMissing, await bed.RefusalAsync(certificate));
    }

    /// <summary>
    /// The refusal for a CVM of a fresh default KMS that presents a certificate valid from now + <paramref name="notBefore"/>
    /// to now + <paramref name="notAfter"/>, its quote over that certificate's key (or another key), of a debug TD or not.
    /// </summary>
    private static async Task<ErrorCode> CertificateRefusalAsync(TimeSpan notBefore, TimeSpan notAfter, bool quoteAnotherKey = false, bool debugTd = false)
    {
        await using var bed = await KmsTestbed.StartAsync();
        using var cvm = await bed.BootCvmAsync();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var now = bed.Clock.GetUtcNow();
        using var certificate = cvm.Certificate(
            key, now + notBefore, now + notAfter, quotedKey: quoteAnotherKey ? other : null, bodyProfile: debugTd ? cvm.Platform.Profile.WithDebug() : null);
        return await bed.RefusalAsync(certificate);
    }
}
