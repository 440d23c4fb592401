using System.Security.Cryptography;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Trust;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Trust;

public class IntelSgxRootCaTests
{
    [Fact]
    public void Embedded_Root_IsTheSharedTrustAnchor()
    {
        var file = SharedTestData.ReadBytes("trust/intel-sgx-root-ca.der");
        Assert.Equal(file, IntelSgxRootCa.ToArray());
        Assert.True(IntelSgxRootCa.Is(file));
        Assert.Equal(IntelSgxRootCa.Sha256Hex, Convert.ToHexStringLower(SHA256.HashData(IntelSgxRootCa.Der)));
    }

    [Fact]
    public void Embedded_Root_IsASelfSignedCa()
    {
        var root = ParsedCertificate.Parse(IntelSgxRootCa.ToArray(), ErrorCode.PckChainMalformed);
        Assert.Equal("Intel SGX Root CA", root.SubjectCommonName);
        Assert.Equal("22650cd65a9d3489f383b49552bf501b392706ac", root.SerialHex);
        Assert.True(root.IsCa);
        Assert.Equal(1, root.PathLength);
        Assert.True(root.IsSignedBy(root));
    }
}
