using System.Text;
using PrivateMl.Attestation.Policy;
using PrivateMl.Attestation.Verification;
using PrivateMl.Testing;

namespace PrivateMl.Attestation.Tests.Policy;

public sealed class AttestationPolicyJsonTests
{
    private static AttestationPolicy Parse(string json) => AttestationPolicyJson.Parse(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Loads_TheDocumentedExample_EveryMember()
    {
        var policy = AttestationPolicy.Load(Path.Combine(SharedTestData.RepositoryRoot, "docs", "policy.example.json"));
        var quote = PolicyFixtures.RealTdxQuote().TdReport!;

        Assert.Equal([TcbStatus.UpToDate, TcbStatus.SWHardeningNeeded], policy.AcceptedTcbStatuses.Order());
        Assert.Equal(["INTEL-SA-00615", "INTEL-SA-00828"], policy.AllowedAdvisoryIds!.Order(StringComparer.Ordinal));
        Assert.Equal(17, policy.MinimumTcbEvaluationDataNumber);
        Assert.False(policy.AllowDebug);
        Assert.False(policy.AllowSimulated);
        Assert.Equal(2, policy.MrSeamAllowList!.Count);
        Assert.Equal(quote.MrTd.ToArray(), policy.MrTd!.Value.ToArray());
        Assert.Equal(quote.Rtmr2.ToArray(), policy.Rtmr2!.Value.ToArray());
        Assert.Equal(quote.Xfam.ToArray(), policy.Xfam!.Value.ToArray());
        Assert.Equal(quote.ReportData.ToArray(), policy.ReportData!.Value.ToArray());
        Assert.NotNull(policy.Description);
        Assert.NotNull(policy.MrOwnerConfig);
        Assert.NotNull(policy.MinimumTeeTcbSvn);
    }

    [Fact]
    public void EmptyObject_IsTheStrictDefault()
    {
        var policy = Parse("{}");

        Assert.Equal([TcbStatus.UpToDate], policy.AcceptedTcbStatuses);
        Assert.Null(policy.AllowedAdvisoryIds);
        Assert.False(policy.AllowDebug);
        Assert.False(policy.AllowSimulated);
        Assert.Null(policy.MrTd);
        Assert.Null(policy.MrSeamAllowList);
    }

    [Fact]
    public void Null_MeansUnset()
    {
        var policy = Parse("{\"mrTd\":null,\"acceptedTcbStatuses\":null}");

        Assert.Null(policy.MrTd);
        Assert.Equal([TcbStatus.UpToDate], policy.AcceptedTcbStatuses);
    }

    [Theory]
    [InlineData("{\"mrtd\":\"00\"}", "mrtd")] // wrong case: did you mean mrTd
    [InlineData("{\"expectedMrTd\":\"00\"}", "expectedMrTd")]
    [InlineData("{\"allowDebug\":true,\"allowDebug\":false}", "allowDebug")]
    [InlineData("{\"mrTd\":\"00112233\"}", "mrTd")]
    [InlineData("{\"rtmr3\":\"" + "00" + "\"}", "rtmr3")]
    [InlineData("{\"reportData\":\"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000ff\"}", "reportData")]
    [InlineData("{\"tdAttributes\":\"00000010000000\"}", "tdAttributes")]
    [InlineData("{\"xfam\":\"e70206000000000g\"}", "xfam")]
    [InlineData("{\"minimumTeeTcbSvn\":\"0301\"}", "minimumTeeTcbSvn")]
    [InlineData("{\"mrSeamAllowList\":[]}", "mrSeamAllowList")]
    [InlineData("{\"mrSeamAllowList\":[\"00\"]}", "mrSeamAllowList[0]")]
    [InlineData("{\"mrSeamAllowList\":\"00\"}", "mrSeamAllowList")]
    [InlineData("{\"acceptedTcbStatuses\":[\"uptodate\"]}", "acceptedTcbStatuses")]
    [InlineData("{\"acceptedTcbStatuses\":[\"Revoked\"]}", "acceptedTcbStatuses")]
    [InlineData("{\"acceptedTcbStatuses\":[\"4\"]}", "acceptedTcbStatuses")]
    [InlineData("{\"acceptedTcbStatuses\":[]}", "acceptedTcbStatuses")]
    [InlineData("{\"acceptedTcbStatuses\":\"UpToDate\"}", "acceptedTcbStatuses")]
    [InlineData("{\"allowedAdvisoryIds\":[\"\"]}", "allowedAdvisoryIds")]
    [InlineData("{\"allowedAdvisoryIds\":[42]}", "allowedAdvisoryIds")]
    [InlineData("{\"allowDebug\":\"yes\"}", "allowDebug")]
    [InlineData("{\"allowSimulated\":1}", "allowSimulated")]
    [InlineData("{\"minimumTcbEvaluationDataNumber\":-1}", "minimumTcbEvaluationDataNumber")]
    [InlineData("{\"minimumTcbEvaluationDataNumber\":1.5}", "minimumTcbEvaluationDataNumber")]
    [InlineData("{\"description\":7}", "description")]
    public void Rejects_BadMember_NamingIt(string json, string member)
    {
        var ex = Assert.Throws<AttestationException>(() => Parse(json));

        Assert.Equal(ErrorCode.PolicyInvalid, ex.Code);
        Assert.Contains($"'{member}'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rejects_WrongLength_SayingExpectedAndActual()
    {
        var ex = Assert.Throws<AttestationException>(() => Parse("{\"mrTd\":\"" + new string('0', 94) + "\"}"));

        Assert.Equal(ErrorCode.PolicyInvalid, ex.Code);
        Assert.Contains("48 bytes", ex.Message, StringComparison.Ordinal);
        Assert.Contains("47 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("[]")]
    [InlineData("\"policy\"")]
    [InlineData("{")]
    [InlineData("{} {}")]
    [InlineData("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}")]
    public void Rejects_TextThatIsNotOnePolicyObject(string json)
    {
        var ex = Assert.Throws<AttestationException>(() => Parse(json));

        Assert.Equal(ErrorCode.PolicyInvalid, ex.Code);
    }

    [Fact]
    public void Rejects_MissingFile_AsPolicyInvalid()
    {
        var ex = Assert.Throws<AttestationException>(() => AttestationPolicy.Load(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N") + ".json")));

        Assert.Equal(ErrorCode.PolicyInvalid, ex.Code);
    }

    [Fact]
    public void CodeBuiltPolicy_ChecksLengths_AndCopiesBytes()
    {
        Assert.Throws<ArgumentException>(() => new AttestationPolicy { MrTd = new byte[47] });
        Assert.Throws<ArgumentException>(() => new AttestationPolicy { ReportData = new byte[48] });
        Assert.Throws<ArgumentException>(() => new AttestationPolicy { AcceptedTcbStatuses = new HashSet<TcbStatus> { TcbStatus.Revoked } });
        Assert.Throws<ArgumentException>(() => new AttestationPolicy { MrSeamAllowList = [] });

        var mrTd = new byte[48];
        var policy = new AttestationPolicy { MrTd = mrTd };
        mrTd[0] = 0xff;

        Assert.Equal(0, policy.MrTd!.Value.Span[0]);
    }
}
