using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.Tests.Tdx.NegativeCorpus;

/// <summary>
/// Every generated negative vector is rejected with its expected typed reason (the first failed check's code), while
/// the same construction without the defect is accepted.
/// </summary>
public sealed class NegativeCorpusTests
{
    public static TheoryData<string, ErrorCode> Cases()
    {
        var data = new TheoryData<string, ErrorCode>();
        foreach (var c in NegativeCorpusCases.All)
        {
            data.Add(c.Name, c.Expected);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Rejects(string name, ErrorCode expected)
    {
        var vector = NegativeCorpusCases.All.Single(c => c.Name == name);
        using var platform = CorpusFixture.NewPlatform(vector.Platform);
        var quote = vector.EditQuote(platform, platform.CreateQuote(CorpusFixture.ReportData, new byte[48], vector.Quote(platform)));
        var collateral = vector.EditCollateral(platform, platform.CreateCollateral(CorpusFixture.Now, vector.Collateral(platform)));

        var result = CorpusFixture.Verifier(platform).Verify(quote, collateral, CorpusFixture.Now + vector.VerifyOffset);

        Assert.False(result.Accepted, $"{name} was accepted");
        Assert.True(expected == result.Error, $"{name}: expected {expected}, got {result.Error}\n{CorpusFixture.Describe(result)}");
    }

    [Fact]
    public void Corpus_is_large_and_names_are_unique()
    {
        Assert.True(NegativeCorpusCases.All.Count >= 46, $"only {NegativeCorpusCases.All.Count} cases");
        Assert.Equal(NegativeCorpusCases.All.Count, NegativeCorpusCases.All.Select(c => c.Name).Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Every_expected_code_group_is_covered()
    {
        var groups = NegativeCorpusCases.All.Select(c => (int)c.Expected / 100).ToHashSet();

        Assert.Equal([1, 2, 3, 4, 5], groups.Order());
    }
}
