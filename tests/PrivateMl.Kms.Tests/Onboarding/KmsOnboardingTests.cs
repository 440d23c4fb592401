using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Hosting;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Onboarding;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.RaTls;
using PrivateMl.Kms.Tests.Support;

namespace PrivateMl.Kms.Tests.Onboarding;

/// <summary>A second KMS replicates the first one's roots over mutually attested RA-TLS on loopback.</summary>
public sealed class KmsOnboardingTests
{
    private static readonly KmsPolicy ReplicaPolicy = new()
    {
        Replicas = new KmsReplicaPolicy(null, [System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(SimulatedKmsTd.DefaultCompose))]),
    };

    [Fact]
    public async Task SecondKms_EndsWithTheSameRootPublicKeys_AndKeepsThemAcrossRestart()
    {
        await using var first = await KmsTestbed.StartAsync(ReplicaPolicy);
        new KeyEpochStore(first.StateDirectory, first.Clock).Rotate();
        await using var second = await KmsTestbed.StartAsync(ReplicaPolicy, shareWith: first, stateName: "kms2", onboardOnly: true);
        using (var imported = await KmsOnboarding.OnboardAsync(first.Url, second.StateDirectory, second.KmsTd.QuoteSource, Verifier(second), ReplicaPolicy, second.Clock, CancellationToken.None))
        using (var source = KmsRootKeys.Open(first.StateDirectory))
        {
            Assert.Equal(source.RootCaSpki, imported.RootCaSpki);
            Assert.Equal(source.K256PublicKey, imported.K256PublicKey);
        }

        await second.StartServerAsync();
        using var metaFirst = await first.CallAsync("GetMeta", null);
        using var metaSecond = await second.CallAsync("GetMeta", null);
        Assert.Equal(metaFirst.RootElement.GetProperty("k256_pubkey").GetString(), metaSecond.RootElement.GetProperty("k256_pubkey").GetString());
        Assert.Equal(SpkiOf(metaFirst), SpkiOf(metaSecond));
        Assert.Equal(2u, metaSecond.RootElement.GetProperty("current_epoch").GetUInt32());

        // Same app, either KMS: the same keys.
        using var cvm = await first.BootCvmAsync();
        using var fromFirst = await first.GetAppKeyAsync(cvm);
        using var fromSecond = await second.GetAppKeyAsync(cvm);
        Assert.Equal(fromFirst.RootElement.GetProperty("env_crypt_key").GetString(), fromSecond.RootElement.GetProperty("env_crypt_key").GetString());

        await second.RestartAsync();
        using var metaRestarted = await second.CallAsync("GetMeta", null);
        Assert.Equal(metaFirst.RootElement.GetProperty("k256_pubkey").GetString(), metaRestarted.RootElement.GetProperty("k256_pubkey").GetString());
        Assert.Equal(SpkiOf(metaFirst), SpkiOf(metaRestarted));
    }

    [Fact]
    public async Task Rejects_Onboarding_WhenTheSourceNamesNoReplicas()
    {
        await using var first = await KmsTestbed.StartAsync();
        await using var second = await KmsTestbed.StartAsync(ReplicaPolicy, shareWith: first, stateName: "kms2", onboardOnly: true);
        var e = await Assert.ThrowsAsync<KmsClientException>(() =>
            KmsOnboarding.OnboardAsync(first.Url, second.StateDirectory, second.KmsTd.QuoteSource, Verifier(second), ReplicaPolicy, second.Clock, CancellationToken.None));
        Assert.Equal(nameof(ErrorCode.KmsNotAKms), e.RefusalCode);
        Assert.False(KmsRootKeys.Exists(second.StateDirectory));
    }

    [Fact]
    public async Task Rejects_Onboarding_WithoutAnAttestedClient()
    {
        await using var first = await KmsTestbed.StartAsync(ReplicaPolicy);
        using var plain = new KmsClient(first.Url, new KmsClientOptions { TrustedRootCa = first.RootCa });
        var e = await Assert.ThrowsAsync<KmsClientException>(() => plain.CallAsync("GetKmsKey", null, CancellationToken.None));
        Assert.Equal(nameof(ErrorCode.KmsClientCertificateRequired), e.RefusalCode);
    }

    private static RaTlsVerifier Verifier(KmsTestbed bed) =>
        new(new DcapVerifier(bed.KmsTd.Trust.Verifier), bed.KmsTd.Trust.Collateral, new QuoteReplayCache(), bed.Clock);

    private static string SpkiOf(System.Text.Json.JsonDocument meta)
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(meta.RootElement.GetProperty("ca_cert").GetString());
        return Convert.ToHexStringLower(certificate.PublicKey.ExportSubjectPublicKeyInfo());
    }
}
