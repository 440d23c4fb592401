using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Security.Cryptography.Xml;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>
/// Teaches <see cref="SignedXml"/> what NVIDIA's RIMs use: ECDSA-SHA384 (raw r ‖ s signatures) and the C14N 1.1 URI,
/// mapped to the C14N 1.0 transform (identical output for documents without <c>xml:id</c>/<c>xml:base</c>, which
/// RIMs do not use; verified against xmlsec1 on every NVIDIA RIM in the test data).
/// </summary>
public static class XmlDsigAlgorithms
{
    private static readonly Lazy<bool> Registered = new(() =>
    {
        CryptoConfig.AddAlgorithm(typeof(EcdsaSha384SignatureDescription), NvidiaRim.EcdsaSha384Uri);
        CryptoConfig.AddAlgorithm(typeof(XmlDsigC14NTransform), NvidiaRim.C14N11Uri);
        return true;
    });

    /// <summary>Registers the algorithms once per process (idempotent, thread-safe).</summary>
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicConstructors, typeof(EcdsaSha384SignatureDescription))]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicConstructors, typeof(XmlDsigC14NTransform))]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicConstructors, typeof(XmlDsigEnvelopedSignatureTransform))]
    public static void Register() => _ = Registered.Value;

    /// <summary>ECDSA over SHA-384 with IEEE P1363 (r ‖ s) signatures, as XML-DSig 1.1 specifies.</summary>
    public sealed class EcdsaSha384SignatureDescription : SignatureDescription
    {
        public EcdsaSha384SignatureDescription()
        {
            KeyAlgorithm = typeof(ECDsa).AssemblyQualifiedName;
            DigestAlgorithm = typeof(SHA384).AssemblyQualifiedName;
        }

        [RequiresUnreferencedCode("SignatureDescription members are trimming-unsafe in the base class")]
        public override HashAlgorithm CreateDigest() => SHA384.Create();

        [RequiresUnreferencedCode("SignatureDescription members are trimming-unsafe in the base class")]
        public override AsymmetricSignatureDeformatter CreateDeformatter(AsymmetricAlgorithm key) => new Deformatter((ECDsa)key);

        [RequiresUnreferencedCode("SignatureDescription members are trimming-unsafe in the base class")]
        public override AsymmetricSignatureFormatter CreateFormatter(AsymmetricAlgorithm key) => new Formatter((ECDsa)key);
    }

    private sealed class Deformatter(ECDsa key) : AsymmetricSignatureDeformatter
    {
        public override void SetHashAlgorithm(string strName)
        {
        }

        public override void SetKey(AsymmetricAlgorithm key) => throw new NotSupportedException();

        public override bool VerifySignature(byte[] rgbHash, byte[] rgbSignature) =>
            key.VerifyHash(rgbHash, rgbSignature, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    private sealed class Formatter(ECDsa key) : AsymmetricSignatureFormatter
    {
        public override void SetHashAlgorithm(string strName)
        {
        }

        public override void SetKey(AsymmetricAlgorithm key) => throw new NotSupportedException();

        public override byte[] CreateSignature(byte[] rgbHash) =>
            key.SignHash(rgbHash, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }
}
