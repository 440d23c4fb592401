using System.Text;
using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tests.Tdx;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Pck;

public class PckExtensionsTests
{
    public static TheoryData<string> Quotes => new(Vectors.QuoteNames);

    private static List<ParsedCertificate> Chain(string quoteName)
    {
        var q = TdxQuote.Parse(Vectors.Quote(quoteName));
        var pem = Encoding.ASCII.GetString(q.Signature.CertificationData.Data.Span);
        return PemChain.Decode(pem, ErrorCode.PckChainMalformed, "chain").Select(d => ParsedCertificate.Parse(d, ErrorCode.PckChainMalformed)).ToList();
    }

    [Theory]
    [MemberData(nameof(Quotes))]
    public void Reads_PckChain_AsExpected(string name)
    {
        var expected = Vectors.Parsed(name).GetProperty("pck_chain").EnumerateArray().ToList();
        var chain = Chain(name);
        Assert.Equal(expected.Count, chain.Count);
        for (var i = 0; i < chain.Count; i++)
        {
            Assert.Equal(expected[i].GetProperty("subject_cn").GetString(), chain[i].SubjectCommonName);
            Assert.Equal(expected[i].GetProperty("serial").GetString(), chain[i].SerialHex);
            Assert.Equal(expected[i].GetProperty("not_before_unix").GetInt64(), chain[i].NotBefore.ToUnixTimeSeconds());
            Assert.Equal(expected[i].GetProperty("not_after_unix").GetInt64(), chain[i].NotAfter.ToUnixTimeSeconds());
        }

        Assert.True(chain[0].IsSignedBy(chain[1]));
        Assert.True(chain[1].IsSignedBy(chain[2]));
        Assert.False(chain[0].IsSignedBy(chain[2]));
        Assert.False(chain[0].IsCa);
        Assert.True(chain[1].IsCa);
    }

    [Theory]
    [MemberData(nameof(Quotes))]
    public void Reads_SgxExtension_AsExpected(string name)
    {
        var e = Vectors.Parsed(name).GetProperty("pck");
        var leaf = Chain(name)[0];
        Assert.Equal(e.GetProperty("issuer_cn").GetString(), leaf.IssuerCommonName);
        var pck = PckExtensions.Parse(leaf.SgxExtension!.Value);
        Assert.Equal(e.GetProperty("ppid").GetString(), Vectors.Hex(pck.Ppid));
        Assert.Equal(e.GetProperty("sgx_tcb_components").EnumerateArray().Select(x => x.GetInt32()), pck.TcbComponents);
        Assert.Equal(e.GetProperty("pcesvn").GetInt32(), pck.PceSvn);
        Assert.Equal(e.GetProperty("cpusvn").GetString(), Vectors.Hex(pck.CpuSvn));
        Assert.Equal(e.GetProperty("pce_id").GetString(), pck.PceIdHex);
        Assert.Equal(e.GetProperty("fmspc").GetString(), pck.FmspcHex);
        Assert.Equal(Vectors.Parsed(name).GetProperty("fmspc").GetString(), pck.FmspcHex);
        Assert.Equal(e.GetProperty("sgx_type").GetInt32(), (int)pck.SgxType);
        Assert.Equal(e.GetProperty("sgx_extension_entries").GetInt32(), pck.EntryCount);
        if (e.TryGetProperty("platform_instance_id", out var pid))
        {
            Assert.Equal(pid.GetString(), Vectors.Hex(pck.PlatformInstanceId!.Value));
            var c = e.GetProperty("configuration");
            Assert.Equal(new PckPlatformConfiguration(
                c.GetProperty("dynamic_platform").GetBoolean(),
                c.GetProperty("cached_keys").GetBoolean(),
                c.GetProperty("smt_enabled").GetBoolean()), pck.Configuration);
        }
        else
        {
            Assert.Null(pck.PlatformInstanceId);
            Assert.Null(pck.Configuration);
        }
    }

    [Fact]
    public void Rejects_TruncatedOrAlteredExtension_WithTypedError()
    {
        var value = Chain("tdx_quote")[0].SgxExtension!.Value.ToArray();
        for (var cut = 0; cut < value.Length; cut += 13)
        {
            var ex = Assert.Throws<AttestationException>(() => PckExtensions.Parse(value.AsMemory(0, cut)));
            Assert.Equal(ErrorCode.PckExtensionMalformed, ex.Code);
        }

        var random = new Random(1234);
        for (var i = 0; i < 500; i++)
        {
            var copy = (byte[])value.Clone();
            copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
            try
            {
                PckExtensions.Parse(copy);
            }
            catch (AttestationException ex)
            {
                Assert.Equal(ErrorCode.PckExtensionMalformed, ex.Code);
            }
        }
    }
}
