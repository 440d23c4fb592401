using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tdx;

public sealed partial class DcapVerifier
{
    private const string TcbSigningPhrase = "SGX TCB Signing";
    private const string PckPlatformCaPhrase = "SGX PCK Platform CA";
    private const string PckProcessorCaPhrase = "SGX PCK Processor CA";
    private const string PckLeafPhrase = "SGX PCK Certificate";

    private readonly ConcurrentDictionary<CollateralKey, CollateralFacts> _cache = new();

    /// <summary>A failure found without looking at the clock (parse, name, signature).</summary>
    private readonly record struct Failure(ErrorCode Code, string Detail);

    /// <summary>SHA-256 of every collateral member, length-prefixed: the identity of "the same collateral bytes".</summary>
    private readonly record struct CollateralKey(ulong A, ulong B, ulong C, ulong D);

    /// <summary>An issuer chain from the collateral: [signer, root]. <see cref="Failure"/> is set when it is untrusted regardless of time.</summary>
    private sealed class ChainFacts
    {
        public ParsedCertificate? Signer { get; init; }

        public Failure? Failure { get; init; }
    }

    /// <summary>Everything about one collateral set that does not depend on the quote or the time; safe to share.</summary>
    private sealed class CollateralFacts
    {
        public ParsedCrl? RootCrl { get; init; }

        public Failure? RootCrlFailure { get; init; }

        public required ChainFacts TcbInfoChain { get; init; }

        public required ChainFacts QeIdentityChain { get; init; }

        public required ChainFacts PckCrlChain { get; init; }

        public TcbInfo? TcbInfo { get; init; }

        public Failure? TcbInfoFailure { get; init; }

        public QeIdentity? QeIdentity { get; init; }

        public Failure? QeIdentityFailure { get; init; }

        public ParsedCrl? PckCrl { get; init; }

        public Failure? PckCrlFailure { get; init; }
    }

    private CollateralFacts GetCollateralFacts(DcapCollateral collateral)
    {
        if (Options.CollateralCacheCapacity == 0)
        {
            return BuildCollateralFacts(collateral);
        }

        var key = KeyOf(collateral);
        if (_cache.TryGetValue(key, out var facts))
        {
            return facts;
        }

        facts = BuildCollateralFacts(collateral);
        if (_cache.Count >= Options.CollateralCacheCapacity)
        {
            _cache.Clear();
        }

        _cache[key] = facts;
        return facts;
    }

    private static CollateralKey KeyOf(DcapCollateral c)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void AddBytes(ReadOnlySpan<byte> bytes)
        {
            Span<byte> length = stackalloc byte[8];
            BitConverter.TryWriteBytes(length, (long)bytes.Length);
            hash.AppendData(length);
            hash.AppendData(bytes);
        }

        void AddText(string? text) => AddBytes(text is null ? [0xff] : MemoryMarshal.AsBytes(text.AsSpan()));

        AddText(c.PckCrlIssuerChain);
        AddBytes(c.RootCaCrl);
        AddBytes(c.PckCrl);
        AddText(c.TcbInfoIssuerChain);
        AddText(c.TcbInfo);
        AddBytes(c.TcbInfoSignature);
        AddText(c.QeIdentityIssuerChain);
        AddText(c.QeIdentity);
        AddBytes(c.QeIdentitySignature);
        AddText(c.PckCertificateChain);
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        var words = MemoryMarshal.Cast<byte, ulong>(digest);
        return new CollateralKey(words[0], words[1], words[2], words[3]);
    }

    private CollateralFacts BuildCollateralFacts(DcapCollateral c)
    {
        ParsedCrl? rootCrl = null;
        Failure? rootCrlFailure = null;
        try
        {
            rootCrl = ParsedCrl.Parse(c.RootCaCrl ?? [], "root CA CRL");
            if (!rootCrl.IssuerName.Span.SequenceEqual(_root.SubjectName.Span))
            {
                rootCrlFailure = new Failure(ErrorCode.CrlIssuerMismatch, $"the root CA CRL is issued by \"{rootCrl.IssuerCommonName}\", not by the trusted root");
            }
            else if (!rootCrl.IsSignedBy(_root))
            {
                rootCrlFailure = new Failure(ErrorCode.CrlSignatureInvalid, "the root CA CRL's signature does not verify under the trusted root");
            }
        }
        catch (AttestationException ex)
        {
            rootCrlFailure = new Failure(ex.Code, ex.Message);
        }

        var tcbChain = BuildChain(c.TcbInfoIssuerChain, "TCB info issuer chain", TcbSigningPhrase, expectCa: false);
        var qeChain = string.Equals(c.QeIdentityIssuerChain, c.TcbInfoIssuerChain, StringComparison.Ordinal)
            ? tcbChain
            : BuildChain(c.QeIdentityIssuerChain, "QE identity issuer chain", TcbSigningPhrase, expectCa: false);
        var pckCrlChain = BuildChain(c.PckCrlIssuerChain, "PCK CRL issuer chain", null, expectCa: true);

        var (tcbInfo, tcbInfoFailure) = VerifySignedJson(c.TcbInfo, c.TcbInfoSignature, tcbChain, "TCB info", ErrorCode.TcbInfoSignatureInvalid, TcbInfo.Parse);
        var (qeIdentity, qeFailure) = VerifySignedJson(c.QeIdentity, c.QeIdentitySignature, qeChain, "QE identity", ErrorCode.QeIdentitySignatureInvalid, QeIdentity.Parse);

        ParsedCrl? pckCrl = null;
        Failure? pckCrlFailure = null;
        try
        {
            pckCrl = ParsedCrl.Parse(c.PckCrl ?? [], "PCK CRL");
            if (pckCrlChain.Signer is { } ca)
            {
                if (!pckCrl.IssuerName.Span.SequenceEqual(ca.SubjectName.Span))
                {
                    pckCrlFailure = new Failure(ErrorCode.CrlIssuerMismatch, $"the PCK CRL is issued by \"{pckCrl.IssuerCommonName}\", not by \"{ca.SubjectCommonName}\" of its issuer chain");
                }
                else if (!pckCrl.IsSignedBy(ca))
                {
                    pckCrlFailure = new Failure(ErrorCode.CrlSignatureInvalid, $"the PCK CRL's signature does not verify under \"{ca.SubjectCommonName}\"");
                }
            }
        }
        catch (AttestationException ex)
        {
            pckCrlFailure = new Failure(ex.Code, ex.Message);
        }

        return new CollateralFacts
        {
            RootCrl = rootCrlFailure is null ? rootCrl : null,
            RootCrlFailure = rootCrlFailure,
            TcbInfoChain = tcbChain,
            QeIdentityChain = qeChain,
            PckCrlChain = pckCrlChain,
            TcbInfo = tcbInfo,
            TcbInfoFailure = tcbInfoFailure,
            QeIdentity = qeIdentity,
            QeIdentityFailure = qeFailure,
            PckCrl = pckCrlFailure is null && pckCrlChain.Failure is null ? pckCrl : null,
            PckCrlFailure = pckCrlFailure,
        };
    }

    private static (T? Value, Failure? Failure) VerifySignedJson<T>(string? json, byte[]? signature, ChainFacts chain, string what, ErrorCode signatureCode, Func<ReadOnlySpan<byte>, T> parse)
        where T : class
    {
        if (chain.Signer is not { } signer)
        {
            return (null, null); // reported by the chain check
        }

        if (json is null || signature is null)
        {
            return (null, new Failure(ErrorCode.CollateralMalformed, $"the collateral has no {what}"));
        }

        var bytes = Encoding.UTF8.GetBytes(json);
        if (signature.Length != 64 || !Crypto.VerifyP1363(signer.Key, bytes, signature))
        {
            return (null, new Failure(signatureCode, $"the {what} signature does not verify under \"{signer.SubjectCommonName}\" over the exact {what} bytes"));
        }

        try
        {
            return (parse(bytes), null);
        }
        catch (AttestationException ex)
        {
            return (null, new Failure(ex.Code, ex.Message));
        }
    }

    /// <summary>
    /// Checks an issuer chain [signer, root] without the clock: the root must be the trusted root byte for byte; the
    /// signer must carry the expected CN phrase, be issued and signed by the root, and be a CA or not as required.
    /// </summary>
    private ChainFacts BuildChain(string? pem, string what, string? phrase, bool expectCa)
    {
        try
        {
            var ders = PemChain.Decode(pem ?? string.Empty, ErrorCode.CollateralMalformed, what);
            if (ders.Count != 2)
            {
                return Untrusted($"the {what} has {ders.Count} certificates; 2 (signer, root) are expected");
            }

            if (!ders[1].AsSpan().SequenceEqual(_root.Der.Span))
            {
                return Untrusted($"the {what} does not end in the trusted root certificate");
            }

            var signer = ParsedCertificate.Parse(ders[0], ErrorCode.CollateralMalformed);
            var failure = CheckIssuedByRoot(signer, what, expectCa, ErrorCode.SigningChainUntrusted);
            if (failure is null && phrase is not null && !signer.SubjectCommonName.Contains(phrase, StringComparison.Ordinal))
            {
                failure = new Failure(ErrorCode.SigningChainUntrusted, $"the {what} signer is \"{signer.SubjectCommonName}\", not an \"{phrase}\" certificate");
            }

            if (failure is null && phrase is null && !IsPckCaName(signer.SubjectCommonName))
            {
                failure = new Failure(ErrorCode.SigningChainUntrusted, $"the {what} signer is \"{signer.SubjectCommonName}\", not a PCK Platform or Processor CA");
            }

            return failure is null ? new ChainFacts { Signer = signer } : new ChainFacts { Failure = failure };
        }
        catch (AttestationException ex)
        {
            return new ChainFacts { Failure = new Failure(ex.Code, ex.Message) };
        }

        static ChainFacts Untrusted(string detail) => new() { Failure = new Failure(ErrorCode.SigningChainUntrusted, detail) };
    }

    private Failure? CheckIssuedByRoot(ParsedCertificate cert, string what, bool expectCa, ErrorCode code)
    {
        if (!cert.IssuerName.Span.SequenceEqual(_root.SubjectName.Span))
        {
            return new Failure(code, $"\"{cert.SubjectCommonName}\" in the {what} is issued by \"{cert.IssuerCommonName}\", not by the trusted root");
        }

        if (!cert.IsSignedBy(_root))
        {
            return new Failure(code, $"the signature on \"{cert.SubjectCommonName}\" in the {what} does not verify under the trusted root");
        }

        return CheckRole(cert, what, expectCa, code);
    }

    private static Failure? CheckRole(ParsedCertificate cert, string what, bool expectCa, ErrorCode code)
    {
        if (cert.IsCa != expectCa)
        {
            return new Failure(code, $"\"{cert.SubjectCommonName}\" in the {what} is {(cert.IsCa ? "a CA" : "not a CA")}; {(expectCa ? "a CA" : "an end-entity certificate")} is required");
        }

        if (expectCa && cert.KeyUsage is { } ku && (ku & X509KeyUsageBits.KeyCertSign) == 0)
        {
            return new Failure(code, $"\"{cert.SubjectCommonName}\" in the {what} may not sign certificates (key usage)");
        }

        if (!expectCa && cert.KeyUsage is { } eku && (eku & X509KeyUsageBits.DigitalSignature) == 0)
        {
            return new Failure(code, $"\"{cert.SubjectCommonName}\" in the {what} may not make digital signatures (key usage)");
        }

        return null;
    }

    private static bool IsPckCaName(string cn) =>
        cn.Contains(PckPlatformCaPhrase, StringComparison.Ordinal) || cn.Contains(PckProcessorCaPhrase, StringComparison.Ordinal);
}
