using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Org.BouncyCastle.Asn1;
using Org.BouncyCastle.Asn1.Ocsp;
using Org.BouncyCastle.Asn1.X509;
using Org.BouncyCastle.Ocsp;
using PrivateMl.Attestation.Verification;
using BcBigInteger = Org.BouncyCastle.Math.BigInteger;
using BcX509Certificate = Org.BouncyCastle.X509.X509Certificate;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>What an OCSP responder said about one certificate.</summary>
public enum OcspCertificateStatus
{
    Good = 1,
    Revoked = 2,
    Unknown = 3,
}

/// <summary>
/// The verified outcome of one OCSP response: <see cref="Error"/> is set when the response itself is not acceptable
/// (malformed, bad signature, untrusted responder, wrong certificate, nonce not echoed, outside its validity window);
/// otherwise <see cref="Status"/> is what the authenticated responder said.
/// </summary>
public sealed record OcspVerification
{
    public OcspCertificateStatus? Status { get; init; }
    public ErrorCode? Error { get; init; }
    public required string Detail { get; init; }
    public DateTimeOffset? ThisUpdate { get; init; }
    public DateTimeOffset? NextUpdate { get; init; }
    public DateTimeOffset? RevokedAt { get; init; }

    /// <summary>RFC 5280 CRLReason when the responder gave one (6 = certificateHold).</summary>
    public int? RevocationReason { get; init; }

    public bool IsGood => Error is null && Status == OcspCertificateStatus.Good;

    internal static OcspVerification Fail(ErrorCode code, string detail) => new() { Error = code, Detail = detail };
}

/// <summary>
/// OCSP for NVIDIA device certificate chains (RFC 6960), pure: requests are built from the certificates and a nonce,
/// responses are verified against the chain, a trusted root and the time given. NVIDIA's verifiers check the chain's
/// certificates 1..n−2 (BROM, provisioner ICA, identity CA; not the leaf, not the root), each with the next
/// certificate as issuer; the responder is <c>http://ocsp.ndis.nvidia.com</c> (the certificates' AIA).
/// A response is accepted when: its status is successful; it is a basic response whose signature verifies with the
/// issuer's key or with a certificate it carries; such a delegated responder certificate has the OCSPSigning EKU and
/// chains to the trusted root at <c>now</c> (NVIDIA's responder certificates chain to the device root, not always to
/// the issuer directly); a single response names the certificate (serial and issuer hashes); the request nonce is
/// echoed; <c>thisUpdate ≤ now + skew</c> and <c>now ≤ nextUpdate</c> (a missing nextUpdate counts as thisUpdate + 1 h,
/// as NVIDIA's SDK does). Only then is good / revoked / unknown reported.
/// </summary>
public static class GpuOcsp
{
    public const int NonceSize = 32;

    /// <summary>Largest OCSP response accepted (real ones are 1–3 KB).</summary>
    public const int MaxResponseBytes = 64 * 1024;

    public const string OcspSigningEku = "1.3.6.1.5.5.7.3.9";

    /// <summary>Validity assumed when a response has no nextUpdate (NVIDIA's C++ SDK: thisUpdate + 3600 s).</summary>
    public static readonly TimeSpan MissingNextUpdateValidity = TimeSpan.FromHours(1);

    /// <summary>How far in the future thisUpdate may be (responder clocks differ).</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    private const string CertIdHashSha384 = "2.16.840.1.101.3.4.2.2";

    /// <summary>Indices of the certificates NVIDIA checks in a device chain of <paramref name="count"/> certificates.</summary>
    public static IEnumerable<int> CheckedIndices(int count) => Enumerable.Range(1, Math.Max(0, count - 2));

    /// <summary>A DER OCSPRequest for <paramref name="subject"/> (CertID hashed with SHA-384) carrying <paramref name="nonce"/>.</summary>
    public static byte[] BuildRequest(X509Certificate2 subject, X509Certificate2 issuer, ReadOnlySpan<byte> nonce)
    {
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentNullException.ThrowIfNull(issuer);
        if (nonce.Length is 0 or > 64)
        {
            throw new ArgumentException("the OCSP nonce must be 1..64 bytes", nameof(nonce));
        }

        var generator = new OcspReqGenerator();
        var sha384 = new AlgorithmIdentifier(new DerObjectIdentifier(CertIdHashSha384), DerNull.Instance);
        generator.AddRequest(new CertificateID(new CertID(
            sha384,
            new DerOctetString(IssuerHashes(issuer, CertIdHashSha384)!.Value.NameHash),
            new DerOctetString(IssuerHashes(issuer, CertIdHashSha384)!.Value.KeyHash),
            new DerInteger(Serial(subject)))));
        var extensions = new X509ExtensionsGenerator();
        extensions.AddExtension(OcspObjectIdentifiers.PkixOcspNonce, false, new DerOctetString(nonce.ToArray()));
        generator.SetRequestExtensions(extensions.Generate());
        return generator.Generate().GetEncoded();
    }

    /// <summary>
    /// Verifies <paramref name="response"/> (DER OCSPResponse) for <paramref name="subject"/> issued by
    /// <paramref name="issuer"/>. <paramref name="chainAboveSubject"/> are the certificates from the issuer up to (not
    /// including) the root, used to build a delegated responder's path. Never throws for bad input.
    /// </summary>
    public static OcspVerification VerifyResponse(
        ReadOnlySpan<byte> response,
        X509Certificate2 subject,
        X509Certificate2 issuer,
        IReadOnlyList<X509Certificate2> chainAboveSubject,
        X509Certificate2 trustedRoot,
        ReadOnlySpan<byte> nonce,
        DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentNullException.ThrowIfNull(issuer);
        ArgumentNullException.ThrowIfNull(chainAboveSubject);
        ArgumentNullException.ThrowIfNull(trustedRoot);
        if (response.Length == 0 || response.Length > MaxResponseBytes)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseMalformed, $"the OCSP response is {response.Length} bytes (1..{MaxResponseBytes} accepted)");
        }

        BasicOcspResp basic;
        BcX509Certificate[] carried;
        SingleResp[] singles;
        try
        {
            var outer = new OcspResp(response.ToArray());
            if (outer.Status != OcspRespStatus.Successful)
            {
                return OcspVerification.Fail(ErrorCode.OcspResponseMalformed, $"the responder answered status {outer.Status} ({StatusName(outer.Status)}), not successful");
            }

            if (outer.GetResponseObject() is not BasicOcspResp b)
            {
                return OcspVerification.Fail(ErrorCode.OcspResponseMalformed, "the response is not a basic OCSP response");
            }

            basic = b;
            carried = basic.GetCerts() ?? [];
            singles = basic.Responses ?? [];
        }
        catch (Exception e)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseMalformed, $"the OCSP response does not parse ({e.GetType().Name})");
        }

        if (carried.Length > 8)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseMalformed, $"the response carries {carried.Length} certificates");
        }

        // 1. signature: the issuer itself, or a certificate the response carries.
        var bcIssuer = ToBouncyCastle(issuer);
        BcX509Certificate? signer = null;
        foreach (var candidate in carried.Append(bcIssuer))
        {
            if (VerifiesWith(basic, candidate))
            {
                signer = candidate;
                break;
            }
        }

        if (signer is null)
        {
            return OcspVerification.Fail(ErrorCode.OcspSignatureInvalid, "the response signature verifies neither with the issuer's key nor with a certificate it carries");
        }

        // 2. responder authority
        if (!signer.Equals(bcIssuer) && ResponderProblem(signer, carried, chainAboveSubject, trustedRoot, now) is { } responderProblem)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponderUntrusted, responderProblem);
        }

        // 3. the single response for this certificate
        var serial = Serial(subject);
        SingleResp? single = null;
        try
        {
            single = singles.FirstOrDefault(s => Names(s.GetCertID().ToAsn1Object(), issuer, serial));
        }
        catch (Exception e)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseMalformed, $"a CertID in the response cannot be compared ({e.GetType().Name})");
        }

        if (single is null)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseMismatch, $"the response has no status for serial {Convert.ToHexString(subject.SerialNumberBytes.Span)} under '{issuer.GetNameInfo(X509NameType.SimpleName, false)}'");
        }

        // 4. nonce echo
        if (NonceProblem(basic, nonce) is { } nonceProblem)
        {
            return OcspVerification.Fail(ErrorCode.OcspNonceMismatch, nonceProblem);
        }

        // 5. validity window
        var thisUpdate = new DateTimeOffset(DateTime.SpecifyKind(single.ThisUpdate, DateTimeKind.Utc));
        DateTimeOffset? nextUpdate = single.NextUpdate is { } next ? new DateTimeOffset(DateTime.SpecifyKind(next, DateTimeKind.Utc)) : null;
        var validUntil = nextUpdate ?? thisUpdate + MissingNextUpdateValidity;
        if (thisUpdate > now + ClockSkew)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseStale, $"thisUpdate {thisUpdate:O} is after the verification time {now:O}");
        }

        if (now > validUntil)
        {
            return OcspVerification.Fail(ErrorCode.OcspResponseStale, $"the response expired at {validUntil:O} ({(nextUpdate is null ? "thisUpdate + 1 h, no nextUpdate" : "nextUpdate")}); verification time {now:O}");
        }

        // 6. status
        var status = single.GetCertStatus();
        if (status == CertificateStatus.Good)
        {
            return new OcspVerification { Status = OcspCertificateStatus.Good, Detail = "good", ThisUpdate = thisUpdate, NextUpdate = nextUpdate };
        }

        if (status is RevokedStatus revoked)
        {
            int? reason = revoked.HasRevocationReason ? revoked.RevocationReason : null;
            var at = new DateTimeOffset(DateTime.SpecifyKind(revoked.RevocationTime, DateTimeKind.Utc));
            return new OcspVerification
            {
                Status = OcspCertificateStatus.Revoked,
                Detail = $"revoked at {at:O}" + (reason is { } r ? $" (reason {r}{(r == CrlReason.CertificateHold ? ", certificateHold" : string.Empty)})" : string.Empty),
                ThisUpdate = thisUpdate,
                NextUpdate = nextUpdate,
                RevokedAt = at,
                RevocationReason = reason,
            };
        }

        return new OcspVerification { Status = OcspCertificateStatus.Unknown, Detail = "unknown to the responder", ThisUpdate = thisUpdate, NextUpdate = nextUpdate };
    }

    /// <summary>
    /// Certificates 1..n−2 of the chain, each against its OCSP answer: all good passes; the first that is revoked,
    /// unknown, unanswered or answered by a response that does not verify fails the check with its own code. The chain
    /// must already be verified to <paramref name="trustedRoot"/>.
    /// </summary>
    public static CheckResult CheckChain(IReadOnlyList<X509Certificate2> certs, GpuOcspResponses ocsp, X509Certificate2 trustedRoot, DateTimeOffset now, bool allowCertificateHold = false)
    {
        ArgumentNullException.ThrowIfNull(certs);
        ArgumentNullException.ThrowIfNull(ocsp);
        const string check = GpuEvidenceVerifier.CheckNames.Ocsp;
        var good = new List<string>();
        foreach (var i in CheckedIndices(certs.Count))
        {
            var subject = certs[i];
            var name = $"certificate {i} '{subject.GetNameInfo(X509NameType.SimpleName, false)}'";
            if (ocsp.Find(subject) is not { } exchange)
            {
                return CheckResult.Fail(check, ErrorCode.OcspResponseMissing, $"{name}: no OCSP answer was fetched");
            }

            if (exchange.Response is null)
            {
                return CheckResult.Fail(check, ErrorCode.OcspResponderUnavailable, $"{name}: {exchange.Responder} gave no answer ({exchange.FetchError ?? "unknown reason"})");
            }

            var above = certs.Skip(i + 1).Take(certs.Count - i - 2).ToList();
            var verdict = VerifyResponse(exchange.Response, subject, certs[i + 1], above, trustedRoot, exchange.Nonce, now);
            if (verdict.Error is { } error)
            {
                return CheckResult.Fail(check, error, $"{name}: {verdict.Detail}");
            }

            switch (verdict.Status)
            {
                case OcspCertificateStatus.Revoked when verdict.RevocationReason == CrlReason.CertificateHold && allowCertificateHold:
                    good.Add($"{i} on hold (allowed)");
                    break;
                case OcspCertificateStatus.Revoked:
                    return CheckResult.Fail(check, ErrorCode.OcspCertificateRevoked, $"{name}: {verdict.Detail}");
                case OcspCertificateStatus.Unknown:
                    return CheckResult.Fail(check, ErrorCode.OcspCertificateStatusUnknown, $"{name}: {verdict.Detail}");
                default:
                    good.Add($"{i} good until {verdict.NextUpdate ?? verdict.ThisUpdate + MissingNextUpdateValidity:yyyy-MM-ddTHH:mm:ssZ}");
                    break;
            }
        }

        return good.Count == 0
            ? CheckResult.Skip(check, "the chain has no intermediate certificates to check")
            : CheckResult.Pass(check, $"OCSP (signed, nonce echoed, fresh): certificate {string.Join("; ", good)}");
    }

    private static bool VerifiesWith(BasicOcspResp basic, BcX509Certificate candidate)
    {
        try
        {
            return basic.Verify(candidate.GetPublicKey());
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>Why a delegated responder certificate is not trusted; null when it is.</summary>
    private static string? ResponderProblem(BcX509Certificate signer, BcX509Certificate[] carried, IReadOnlyList<X509Certificate2> chainAboveSubject, X509Certificate2 trustedRoot, DateTimeOffset now)
    {
        using var responder = X509CertificateLoader.LoadCertificate(signer.GetEncoded());
        var eku = responder.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (eku is null || !eku.EnhancedKeyUsages.Cast<Oid>().Any(o => o.Value == OcspSigningEku))
        {
            return $"the responder certificate '{responder.GetNameInfo(X509NameType.SimpleName, false)}' lacks the OCSPSigning extended key usage";
        }

        var extra = new List<X509Certificate2>();
        try
        {
            foreach (var c in carried)
            {
                if (!c.Equals(signer))
                {
                    extra.Add(X509CertificateLoader.LoadCertificate(c.GetEncoded()));
                }
            }

            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(trustedRoot);
            foreach (var c in chainAboveSubject.Concat(extra))
            {
                chain.ChainPolicy.ExtraStore.Add(c);
            }
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            chain.ChainPolicy.VerificationTime = now.UtcDateTime;
            chain.ChainPolicy.VerificationTimeIgnored = false;
            var ok = chain.Build(responder);
            var anchoredAtRoot = chain.ChainElements.Count > 0 && chain.ChainElements[^1].Certificate.RawDataMemory.Span.SequenceEqual(trustedRoot.RawDataMemory.Span);
            var problems = string.Join(", ", chain.ChainStatus.Select(s => s.Status.ToString()));
            foreach (var element in chain.ChainElements)
            {
                element.Certificate.Dispose();
            }

            return ok && anchoredAtRoot ? null : $"the responder certificate '{responder.GetNameInfo(X509NameType.SimpleName, false)}' does not chain to the trusted root at {now:O} ({problems})";
        }
        catch (CryptographicException e)
        {
            return $"the responder certificate cannot be validated ({e.Message})";
        }
        finally
        {
            foreach (var c in extra)
            {
                c.Dispose();
            }
        }
    }

    private static string? NonceProblem(BasicOcspResp basic, ReadOnlySpan<byte> nonce)
    {
        if (nonce.IsEmpty)
        {
            return null;
        }

        Asn1OctetString? value;
        try
        {
            value = basic.GetExtensionValue(OcspObjectIdentifiers.PkixOcspNonce);
        }
        catch (Exception)
        {
            return "the nonce extension does not parse";
        }

        if (value is null)
        {
            return "the responder did not echo the request nonce (a cached or replayed response)";
        }

        var echoed = value.GetOctets();
        try
        {
            // RFC 8954: extnValue holds an OCTET STRING with the nonce; some responders put the raw bytes.
            if (Asn1Object.FromByteArray(echoed) is Asn1OctetString inner)
            {
                echoed = inner.GetOctets();
            }
        }
        catch (Exception)
        {
            // raw bytes
        }

        return CryptographicOperations.FixedTimeEquals(echoed, nonce) ? null : "the echoed nonce differs from the request nonce";
    }

    /// <summary>Whether <paramref name="id"/> names the certificate with <paramref name="serial"/> issued by <paramref name="issuer"/>.</summary>
    private static bool Names(CertID id, X509Certificate2 issuer, BcBigInteger serial)
    {
        if (!id.SerialNumber.Value.Equals(serial) || IssuerHashes(issuer, id.HashAlgorithm.Algorithm.Id) is not { } hashes)
        {
            return false;
        }

        return id.IssuerNameHash.GetOctets().AsSpan().SequenceEqual(hashes.NameHash) && id.IssuerKeyHash.GetOctets().AsSpan().SequenceEqual(hashes.KeyHash);
    }

    /// <summary>CertID's issuer hashes (of the issuer's subject DN and of its public key bits) with the named hash; null when unsupported.</summary>
    private static (byte[] NameHash, byte[] KeyHash)? IssuerHashes(X509Certificate2 issuer, string hashOid)
    {
        Func<byte[], byte[]>? hash = hashOid switch
        {
            "1.3.14.3.2.26" => SHA1.HashData,
            "2.16.840.1.101.3.4.2.1" => SHA256.HashData,
            CertIdHashSha384 => SHA384.HashData,
            "2.16.840.1.101.3.4.2.3" => SHA512.HashData,
            _ => null,
        };
        return hash is null ? null : (hash(issuer.SubjectName.RawData), hash(issuer.PublicKey.EncodedKeyValue.RawData));
    }

    private static string StatusName(int status) => status switch
    {
        OcspRespStatus.MalformedRequest => "malformedRequest",
        OcspRespStatus.InternalError => "internalError",
        OcspRespStatus.TryLater => "tryLater",
        OcspRespStatus.SigRequired => "sigRequired",
        OcspRespStatus.Unauthorized => "unauthorized",
        _ => "unknown",
    };

    private static BcBigInteger Serial(X509Certificate2 certificate) => new(1, certificate.SerialNumberBytes.ToArray());

    private static BcX509Certificate ToBouncyCastle(X509Certificate2 certificate) => new(certificate.RawData);
}
