using System.Text.Json;
using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Aci;

namespace PrivateMl.Client;

/// <summary>
/// The ACI binding check (aci.md §9.1): canonicalise the keyset the report carries, build the statement from its
/// digest and this run's nonce, and require <c>sha256(statement) ‖ 0³²</c> to be the quote's REPORTDATA; the
/// report's <c>signing_address</c> (Ed25519) must be a receipt key of that keyset, which must not have expired.
/// </summary>
internal static class AciBinding
{
    public static (CheckResult Check, WorkloadKeyset? Keyset) Check(NodeReport report, ReadOnlySpan<byte> reportJson, ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> nonce, DateTimeOffset now)
    {
        const string Name = NodeVerifier.CheckNames.KeysetBinding;
        WorkloadKeyset keyset;
        string? claimedDigest;
        try
        {
            using var doc = JsonDocument.Parse(reportJson.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
            if (!doc.RootElement.TryGetProperty("attestation", out var attestation) || attestation.ValueKind != JsonValueKind.Object
                || !attestation.TryGetProperty("workload_keyset", out var set))
            {
                return (CheckResult.Fail(Name, ErrorCode.ReportMalformed, "the report has no attestation.workload_keyset (is it an ACI report?)"), null);
            }

            keyset = WorkloadKeyset.Parse(set);
            claimedDigest = doc.RootElement.TryGetProperty("workload_keyset_digest", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        }
        catch (JsonException e)
        {
            return (CheckResult.Fail(Name, ErrorCode.ReportMalformed, "the report is not JSON: " + e.Message), null);
        }
        catch (AttestationException e)
        {
            return (CheckResult.Fail(Name, e.Code, e.Message), null);
        }

        var nonceHex = Convert.ToHexStringLower(nonce);
        if (!AciStatement.Binds(reportData, keyset, nonceHex))
        {
            return (CheckResult.Fail(Name, ErrorCode.SigningKeyNotBound, $"the quote's report_data is not sha256 of the ACI statement over keyset {keyset.Digest} and this run's nonce {nonceHex}: the keys beside the quote are not the keys it attests, or the quote is not fresh"), null);
        }

        if (claimedDigest is not null && claimedDigest != keyset.Digest)
        {
            return (CheckResult.Fail(Name, ErrorCode.ReportMalformed, $"the report claims keyset digest {claimedDigest}, but its keyset canonicalises to {keyset.Digest}"), null);
        }

        if (keyset.IsExpired(now))
        {
            return (CheckResult.Fail(Name, ErrorCode.CollateralExpired, $"the keyset expired at {DateTimeOffset.FromUnixTimeSeconds(keyset.NotAfter):u}"), null);
        }

        var address = report.SigningAddress.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? report.SigningAddress[2..] : report.SigningAddress;
        if (report.SigningAlgo != "ed25519" || !keyset.ReceiptSigningKeys.Any(k => k.Algo == WorkloadKeyset.Ed25519 && string.Equals(k.PublicKey, address, StringComparison.OrdinalIgnoreCase)))
        {
            return (CheckResult.Fail(Name, ErrorCode.SigningKeyNotBound, $"the report's signing key {report.SigningAddress} is not a receipt key of the attested keyset"), null);
        }

        return (CheckResult.Pass(Name, $"the quote binds workload keyset {keyset.Digest} ({keyset.E2eePublicKeys.Count} E2EE keys, receipt key {address}) and this run's nonce"), keyset);
    }
}
