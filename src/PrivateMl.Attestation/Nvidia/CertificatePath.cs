using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>Verifies a supplied certificate list (leaf first) to one trusted root, using every supplied certificate.</summary>
internal static class CertificatePath
{
    /// <summary>Chains already verified (ignoring time), keyed by SHA-256 of root ‖ every certificate; bounded.</summary>
    private static readonly ConcurrentDictionary<string, bool> Verified = new(StringComparer.Ordinal);
    private const int CacheCapacity = 4096;

    /// <summary>
    /// Like <see cref="Verify"/>, but remembers chains that verified (device chains are constant per GPU): on a hit only
    /// the validity windows are re-checked at <paramref name="now"/>. Failures are never cached.
    /// </summary>
    public static (ErrorCode Code, string Detail)? VerifyCached(IReadOnlyList<X509Certificate2> certificates, X509Certificate2 root, DateTimeOffset now)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(root.RawDataMemory.Span);
        Span<byte> len = stackalloc byte[4];
        foreach (var c in certificates)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(len, c.RawDataMemory.Length);
            hash.AppendData(len);
            hash.AppendData(c.RawDataMemory.Span);
        }

        var key = Convert.ToHexString(hash.GetHashAndReset());
        if (Verified.ContainsKey(key))
        {
            foreach (var c in certificates)
            {
                if (now < c.NotBefore.ToUniversalTime() || now > c.NotAfter.ToUniversalTime())
                {
                    return (ErrorCode.CertificateExpired, $"'{c.Subject}' is not valid at {now:O}");
                }
            }

            return null;
        }

        var result = Verify(certificates, root, now);
        if (result is null)
        {
            if (Verified.Count >= CacheCapacity)
            {
                Verified.Clear();
            }

            Verified.TryAdd(key, true);
        }

        return result;
    }

    /// <summary>
    /// Null on success. <paramref name="now"/> null ignores validity periods. A supplied self-signed last certificate
    /// must be byte-identical to <paramref name="root"/> (the supplied root is never trusted by itself).
    /// </summary>
    public static (ErrorCode Code, string Detail)? Verify(IReadOnlyList<X509Certificate2> certificates, X509Certificate2 root, DateTimeOffset? now)
    {
        var last = certificates[^1];
        var hasRoot = last.SubjectName.RawData.AsSpan().SequenceEqual(last.IssuerName.RawData);
        if (hasRoot && !last.RawDataMemory.Span.SequenceEqual(root.RawDataMemory.Span))
        {
            return (ErrorCode.GpuCertificateChainUntrusted, $"the chain ends in '{last.Subject}', which is not the trusted root '{root.Subject}'");
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (now is { } t)
        {
            chain.ChainPolicy.VerificationTime = t.UtcDateTime;
        }
        else
        {
            chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid | X509VerificationFlags.IgnoreCtlNotTimeValid;
        }

        var pathLength = certificates.Count - (hasRoot ? 1 : 0);
        for (var i = 1; i < pathLength; i++)
        {
            chain.ChainPolicy.ExtraStore.Add(certificates[i]);
        }

        bool built;
        try
        {
            built = chain.Build(certificates[0]);
        }
        catch (CryptographicException e)
        {
            return (ErrorCode.GpuCertificateChainMalformed, $"the chain could not be evaluated: {e.Message}");
        }

        if (!built)
        {
            var status = string.Join("; ", chain.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}"));
            var onlyTime = chain.ChainStatus.All(s => s.Status is X509ChainStatusFlags.NotTimeValid or X509ChainStatusFlags.NoError);
            return (onlyTime ? ErrorCode.CertificateExpired : ErrorCode.GpuCertificateChainUntrusted, $"does not verify to '{root.Subject}': {status}");
        }

        if (chain.ChainElements.Count != pathLength + 1)
        {
            return (ErrorCode.GpuCertificateChainUntrusted, $"path built with {chain.ChainElements.Count} certificates, {pathLength + 1} expected (a supplied certificate is unused)");
        }

        for (var i = 0; i < pathLength; i++)
        {
            if (!chain.ChainElements[i].Certificate.RawDataMemory.Span.SequenceEqual(certificates[i].RawDataMemory.Span))
            {
                return (ErrorCode.GpuCertificateChainUntrusted, $"supplied certificate {i} is not on the built path");
            }
        }

        return null;
    }
}
