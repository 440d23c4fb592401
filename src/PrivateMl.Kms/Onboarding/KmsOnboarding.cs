using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using PrivateMl.Agent.Certificates;
using PrivateMl.Agent.Keys;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Policy;
using PrivateMl.Kms.RaTls;

namespace PrivateMl.Kms.Onboarding;

/// <summary>
/// Replicates the root keys of a running KMS into an empty state directory, over mutually attested RA-TLS (dstack.md
/// §9.2): <c>GetTempCaCert</c> on the source; a client certificate with this KMS's quote, signed by that temp CA;
/// <c>GetKmsKey</c> over mutual TLS whose server certificate must chain to the source's root and carry the source's
/// own quote, which is verified with <see cref="RaTlsVerifier"/> and must be admitted by this KMS's
/// <c>replicas</c> policy before anything is written. The source checks this KMS the same way. The keys travel only
/// inside that TLS session, never in clear; the epochs come along.
/// </summary>
public static class KmsOnboarding
{
    public static async Task<KmsRootKeys> OnboardAsync(
        Uri source,
        string stateDirectory,
        RaTlsQuoteSource ownQuotes,
        RaTlsVerifier verifier,
        KmsPolicy policy,
        TimeProvider time,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(ownQuotes);
        ArgumentNullException.ThrowIfNull(verifier);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(time);
        if (KmsRootKeys.Exists(stateDirectory))
        {
            throw new InvalidOperationException($"{stateDirectory} already holds KMS root keys; onboarding needs an empty state directory");
        }

        string tempCertPem, tempKeyPem, caPem;
        using (var bootstrap = new KmsClient(source))
        {
            (tempCertPem, tempKeyPem, caPem) = await bootstrap.GetTempCaCertAsync(cancellationToken).ConfigureAwait(false);
        }

        using var root = X509Certificate2.CreateFromPem(caPem);
        using var random = RandomNumberGenerator.Create();
        var temp = KmsClient.LoadPemPair(tempCertPem, tempKeyPem);
        X509Certificate2 clientCertificate;
        using (temp.Certificate)
        using (temp.Key)
        {
            clientCertificate = await RaTlsCertificates.CreateClientAsync(
                ownQuotes, time.GetUtcNow(), TimeSpan.FromMinutes(10), temp, random, cancellationToken).ConfigureAwait(false);
        }

        using (clientCertificate)
        using (var client = new KmsClient(source, new KmsClientOptions { ClientCertificate = clientCertificate, TrustedRootCa = root }))
        using (var response = await client.CallAsync("GetKmsKey", w => w.WriteString("vm_config", ""), cancellationToken).ConfigureAwait(false))
        {
            // The server's own certificate is judged like any RA-TLS certificate, without the freshness window (it
            // lives as long as the server runs).
            var server = await verifier.VerifyAsync(client.ServerCertificate, policy with { FreshnessWindow = null }, cancellationToken).ConfigureAwait(false);
            if (server.Refusal is { } refusal)
            {
                throw new AttestationException(refusal.Code, $"the source KMS is not attested: {refusal.Reason}");
            }

            var admitted = await new KmsAuthorizer(null).AuthorizeReplicaAsync(
                server.Caller!, policy with { Webhook = null }, "", root.PublicKey.ExportSubjectPublicKeyInfo(), cancellationToken).ConfigureAwait(false);
            if (admitted.Refusal is { } denied)
            {
                throw new AttestationException(denied.Code, $"the source KMS is not an admitted replica: {denied.Reason}");
            }

            return Import(response.RootElement, root, stateDirectory, time, random);
        }
    }

    private static KmsRootKeys Import(JsonElement response, X509Certificate2 root, string stateDirectory, TimeProvider time, RandomNumberGenerator random)
    {
        if (response.ValueKind != JsonValueKind.Object || !response.TryGetProperty("keys", out var keys)
            || keys.ValueKind != JsonValueKind.Array || keys.GetArrayLength() != 1)
        {
            throw new AttestationException(ErrorCode.KmsRequestInvalid, "GetKmsKey answered without exactly one key set");
        }

        var set = keys[0];
        var caKeyPem = KmsClient.Text(set, "ca_key");
        var k256 = KmsClient.Hex(set, "k256_key");
        try
        {
            using (var caKey = ECDsa.Create())
            {
                caKey.ImportFromPem(caKeyPem);
                if (!caKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(root.PublicKey.ExportSubjectPublicKeyInfo()))
                {
                    throw new AttestationException(ErrorCode.KmsRequestInvalid, "the root CA key from GetKmsKey does not match the source's root CA certificate");
                }
            }

            var epochs = response.TryGetProperty("epochs", out var e) && e.ValueKind == JsonValueKind.String
                ? KeyEpochStore.Deserialize(e.GetString()!) : null;
            var imported = KmsRootKeys.Import(stateDirectory, caKeyPem, k256, random);
            if (epochs is not null)
            {
                new KeyEpochStore(stateDirectory, time).Replace(epochs);
            }

            return imported;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException or InvalidDataException)
        {
            throw new AttestationException(ErrorCode.KmsRequestInvalid, $"GetKmsKey answered keys that cannot be used: {ex.Message}", ex);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(k256);
        }
    }
}
