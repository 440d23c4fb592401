using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Org.BouncyCastle.Asn1;
using Org.BouncyCastle.Asn1.Ocsp;
using Org.BouncyCastle.Asn1.X509;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Operators;
using Org.BouncyCastle.Ocsp;
using Org.BouncyCastle.Security;
using PrivateMl.Testing;
using BcX509Certificate = Org.BouncyCastle.X509.X509Certificate;

namespace PrivateMl.Collateral.Tests.Nvidia;

/// <summary>How the test responder answers.</summary>
public enum OcspAnswer
{
    Good,
    Revoked,
    OnHold,
    Unknown,

    /// <summary>A good answer whose signature bytes are flipped.</summary>
    BadSignature,

    /// <summary>A good answer signed by a self-made "responder" that does not chain to the root.</summary>
    ForeignResponder,

    /// <summary>A good answer whose nextUpdate lies a day before the verification time.</summary>
    Stale,

    /// <summary>A good answer without the request's nonce (what a caching proxy serves).</summary>
    NoNonce,

    /// <summary>HTTP 500.</summary>
    HttpError,
}

/// <summary>
/// A certificate authority for tests, shaped like NVIDIA's device chains (P-384, ecdsa-with-SHA384):
/// root → identity CA → provisioner ICA → device (BROM) CA → leaf, with the CAs' AIA naming an OCSP URL.
/// </summary>
internal sealed class TestDeviceCa : IDisposable
{
    private readonly List<(X509Certificate2 Certificate, ECDsa Key)> _levels = [];

    public TestDeviceCa(Uri? ocspUrl, DateTimeOffset notBefore, DateTimeOffset notAfter, string? rootPem = null)
    {
        var names = new[] { "CN=Test Device Identity CA", "CN=Test GH100 Identity", "CN=Test GH100 Provisioner ICA 1", "CN=Test GH100 A01 GSP BROM", "CN=Test GH100 A01 GSP FMC LF" };
        for (var i = 0; i < names.Length; i++)
        {
            var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
            if (i == 0 && rootPem is not null)
            {
                key.ImportFromPem(rootPem);
            }

            var request = new CertificateRequest(names[i], key, HashAlgorithmName.SHA384);
            var isCa = i < names.Length - 1;
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(isCa, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(isCa ? X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign : X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            if (i > 0 && ocspUrl is not null)
            {
                request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension([ocspUrl.ToString()], null));
            }

            var serial = RandomNumberGenerator.GetBytes(12);
            serial[0] = (byte)((serial[0] & 0x7F) | 0x01);
            var certificate = i == 0
                ? request.CreateSelfSigned(notBefore, notAfter)
                : request.Create(_levels[i - 1].Certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_levels[i - 1].Key), notBefore, notAfter, serial);
            _levels.Add((certificate, key));
        }
    }

    public X509Certificate2 Root => _levels[0].Certificate;

    /// <summary>Leaf first, root last, as GPUs hand them out.</summary>
    public IReadOnlyList<X509Certificate2> ChainLeafFirst => _levels.Select(l => l.Certificate).Reverse().ToList();

    public ECDsa KeyOf(X509Certificate2 certificate) => _levels.Single(l => l.Certificate.Equals(certificate)).Key;

    /// <summary>A delegated responder certificate (OCSPSigning EKU) issued by <paramref name="issuer"/>.</summary>
    public (X509Certificate2 Certificate, ECDsa Key) IssueResponder(X509Certificate2 issuer, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var request = new CertificateRequest("CN=Test OCSP Responder", key, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.9")], false));
        return (request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(KeyOf(issuer)), notBefore, notAfter, [0x0C, 0x5B]), key);
    }

    public void Dispose()
    {
        foreach (var (certificate, key) in _levels)
        {
            certificate.Dispose();
            key.Dispose();
        }
    }
}

/// <summary>
/// A real OCSP responder over HTTP on 127.0.0.1, built with BouncyCastle: it parses the DER request, and answers every
/// CertID it knows (by serial) with the configured <see cref="OcspAnswer"/>, signed by the certificate's issuer (or a
/// delegated responder), echoing the nonce. Answers for serials it does not know are "unknown".
/// </summary>
internal sealed class TestOcspResponder : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, (X509Certificate2 Issuer, ECDsa IssuerKey)> _known = new();

    private TestOcspResponder(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    public OcspAnswer Answer { get; set; }

    /// <summary>When set, answers are signed by this delegated responder (and carry its certificate).</summary>
    public (X509Certificate2 Certificate, ECDsa Key)? Delegate { get; set; }

    /// <summary>thisUpdate of good answers, relative to which nextUpdate is set (tests inject their clock here).</summary>
    public DateTimeOffset Now { get; set; } = DateTimeOffset.UtcNow;

    public ConcurrentQueue<byte[]> Requests { get; } = new();

    /// <summary>Exceptions the handler threw (answered 500): a test that expects answers checks this is empty.</summary>
    public ConcurrentQueue<string> Errors { get; } = new();

    public static async Task<TestOcspResponder> StartAsync()
    {
        TestOcspResponder? responder = null;
        var app = await LoopbackServer.ServeAsync(async context =>
        {
            try
            {
                await responder!.HandleAsync(context);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                responder!.Errors.Enqueue(e.ToString());
                context.Response.StatusCode = 500;
            }
        }, TestContext.Current.CancellationToken);
        responder = new TestOcspResponder(app) { Url = app.BaseAddress() };
        return responder;
    }

    /// <summary>Lets the responder answer for <paramref name="subject"/>, signing with its issuer's key.</summary>
    public void Know(X509Certificate2 subject, X509Certificate2 issuer, ECDsa issuerKey) =>
        _known[Convert.ToHexString(subject.SerialNumberBytes.Span)] = (issuer, issuerKey);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();

    private async Task HandleAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        Requests.Enqueue(buffer.ToArray());
        if (Answer == OcspAnswer.HttpError || context.Request.ContentType != "application/ocsp-request")
        {
            context.Response.StatusCode = 500;
            return;
        }

        var request = new OcspReq(buffer.ToArray());
        var single = request.GetRequestList().Single().GetCertID();
        var serial = Convert.ToHexString(single.SerialNumber.ToByteArrayUnsigned());
        var nonce = request.RequestExtensions?.GetExtension(OcspObjectIdentifiers.PkixOcspNonce);

        X509Certificate2 signerCertificate;
        ECDsa signerKey;
        CertificateStatus? status;
        if (_known.TryGetValue(serial, out var issuer))
        {
            (signerCertificate, signerKey) = Delegate ?? (issuer.Issuer, issuer.IssuerKey);
            status = Answer switch
            {
                OcspAnswer.Revoked => new RevokedStatus(Now.AddDays(-3).UtcDateTime, CrlReason.KeyCompromise),
                OcspAnswer.OnHold => new RevokedStatus(Now.AddDays(-3).UtcDateTime, CrlReason.CertificateHold),
                OcspAnswer.Unknown => new UnknownStatus(),
                _ => CertificateStatus.Good,
            };
        }
        else
        {
            throw new InvalidOperationException($"the test responder was asked about serial {serial}, which no test registered");
        }

        using var foreignKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        X509Certificate2? foreign = null;
        if (Answer == OcspAnswer.ForeignResponder)
        {
            var req = new CertificateRequest("CN=Foreign OCSP Responder", foreignKey, HashAlgorithmName.SHA384);
            req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.9")], false));
            foreign = req.CreateSelfSigned(Now.AddDays(-10), Now.AddDays(10));
            (signerCertificate, signerKey) = (foreign, foreignKey);
        }

        using (foreign)
        {
            var thisUpdate = Answer == OcspAnswer.Stale ? Now.AddDays(-2) : Now.AddMinutes(-1);
            var nextUpdate = Answer == OcspAnswer.Stale ? Now.AddDays(-1) : Now.AddHours(4);
            var privateKey = PrivateKeyFactory.CreateKey(signerKey.ExportPkcs8PrivateKey());
            var bcSigner = new BcX509Certificate(signerCertificate.RawData);
            var generator = new BasicOcspRespGenerator(bcSigner.GetPublicKey());
            generator.AddResponse(new CertificateID(single.ToAsn1Object()), status, thisUpdate.UtcDateTime, nextUpdate.UtcDateTime, null);
            if (nonce is not null && Answer != OcspAnswer.NoNonce)
            {
                var extensions = new X509ExtensionsGenerator();
                extensions.AddExtension(OcspObjectIdentifiers.PkixOcspNonce, false, nonce.Value.GetOctets());
                generator.SetResponseExtensions(extensions.Generate());
            }

            var carried = Delegate is not null || foreign is not null ? new[] { bcSigner } : null;
            var basic = generator.Generate(new Asn1SignatureFactory("SHA384WITHECDSA", privateKey), carried, Now.UtcDateTime);
            var encoded = new OCSPRespGenerator().Generate(OCSPRespGenerator.Successful, basic).GetEncoded();
            if (Answer == OcspAnswer.BadSignature)
            {
                encoded = FlipSignatureByte(encoded);
            }

            context.Response.ContentType = "application/ocsp-response";
            await context.Response.Body.WriteAsync(encoded, context.RequestAborted);
        }
    }

    /// <summary>Flips a byte inside the BasicOCSPResponse signature BIT STRING (the structure still parses).</summary>
    private static byte[] FlipSignatureByte(byte[] encoded)
    {
        var outer = OcspResponse.GetInstance(Asn1Object.FromByteArray(encoded));
        var basic = BasicOcspResponse.GetInstance(Asn1Object.FromByteArray(outer.ResponseBytes.Response.GetOctets()));
        var signature = basic.Signature.GetOctets();
        signature[^5] ^= 0x01;
        var tampered = new BasicOcspResponse(basic.TbsResponseData, basic.SignatureAlgorithm, new DerBitString(signature), basic.Certs);
        return new OcspResponse(outer.ResponseStatus, new ResponseBytes(outer.ResponseBytes.ResponseType, new DerOctetString(tampered.GetEncoded()))).GetEncoded();
    }
}
