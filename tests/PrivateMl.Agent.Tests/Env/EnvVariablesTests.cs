using System.Text;
using PrivateMl.Agent.Env;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Agent.Tests.Env;

/// <summary>dstack-util's parse_env rules and output files (research/dstack.md §7.3), and vmm-cli's env-file syntax.</summary>
public sealed class EnvVariablesTests
{
    [Fact]
    public void Parse_KeepsAllowed_DropsOthers_SortsAndLastDuplicateWins()
    {
        var json = "{\"env\":[{\"key\":\"B\",\"value\":\"1\"},{\"key\":\"SECRET\",\"value\":\"x\"},{\"key\":\"A\",\"value\":\"2\"},{\"key\":\"B\",\"value\":\"3\"}]}"u8;
        var result = EnvVariables.Parse(json, ["A", "B"]);

        Assert.Equal(["A", "B"], result.Variables.Select(v => v.Key));
        Assert.Equal(["2", "3"], result.Variables.Select(v => v.Value));
        Assert.Equal(["SECRET"], result.Dropped);
    }

    [Fact]
    public void Parse_NoAllowedEnvs_DropsEverything()
    {
        var result = EnvVariables.Parse("{\"env\":[{\"key\":\"A\",\"value\":\"1\"}]}"u8, []);
        Assert.Empty(result.Variables);
        Assert.Equal(["A"], result.Dropped);
    }

    [Fact]
    public void Parse_IgnoresUnknownFields_AndAcceptsPythonSpacing()
    {
        var result = EnvVariables.Parse("{\"version\": 1, \"env\": [{\"key\": \"A\", \"value\": \"1\", \"note\": [1, 2]}]}"u8, ["A"]);
        Assert.Equal("1", Assert.Single(result.Variables).Value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("[{\"key\":\"\",\"value\":\"\"}]")]
    [InlineData("{\"env\":{}}")]
    [InlineData("{}")]
    [InlineData("{\"env\":[1]}")]
    [InlineData("{\"env\":[{\"key\":\"A\"}]}")]
    [InlineData("{\"env\":[{\"key\":1,\"value\":\"x\"}]}")]
    [InlineData("{\"env\":[{\"key\":\"A\",\"value\":null}]}")]
    [InlineData("{\"env\":[]} {}")]
    [InlineData("{\"env\":[],\"env\":[]}")]
    [InlineData("{\"env\":[{\"key\":\"A\",\"value\":\"1\"}")]
    public void Rejects_MalformedPayload(string json)
    {
        var error = Assert.Throws<AttestationException>(() => EnvVariables.Parse(Encoding.UTF8.GetBytes(json), ["A"]));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    [Fact]
    public void Rejects_InvalidUtf8()
    {
        byte[] json = [.. "{\"env\":[{\"key\":\"A\",\"value\":\""u8, 0xff, .. "\"}]}"u8];
        var error = Assert.Throws<AttestationException>(() => EnvVariables.Parse(json, ["A"]));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    [Theory]
    [InlineData("1A")]
    [InlineData("A-B")]
    [InlineData("A B")]
    [InlineData("")]
    [InlineData("Ä")]
    public void Rejects_AllowedButInvalidName(string name)
    {
        var json = EnvVariables.Serialize([new EnvVariable(name, "v")]);
        var error = Assert.Throws<AttestationException>(() => EnvVariables.Parse(json, [name]));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    [Fact]
    public void ItemCount_AcceptsLimit_RejectsLimitPlusOne()
    {
        var names = Enumerable.Range(0, EnvVariables.MaxItems).Select(i => $"V{i}").ToArray();
        var atLimit = EnvVariables.Serialize(names.Select(n => new EnvVariable(n, "x")));
        Assert.Equal(EnvVariables.MaxItems, EnvVariables.Parse(atLimit, names).Variables.Count);

        var over = EnvVariables.Serialize(names.Append("V_EXTRA").Select(n => new EnvVariable(n, "x")));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, Assert.Throws<AttestationException>(() => EnvVariables.Parse(over, names)).Code);
    }

    [Fact]
    public void NameLength_AcceptsLimit_RejectsLimitPlusOne()
    {
        var atLimit = new string('A', EnvVariables.MaxKeyBytes);
        Assert.Single(EnvVariables.Parse(EnvVariables.Serialize([new EnvVariable(atLimit, "v")]), [atLimit]).Variables);

        var over = atLimit + "A";
        var error = Assert.Throws<AttestationException>(() => EnvVariables.Parse(EnvVariables.Serialize([new EnvVariable(over, "v")]), [over]));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    [Fact]
    public void ValueLength_AcceptsLimit_RejectsLimitPlusOne()
    {
        var atLimit = new string('v', EnvVariables.MaxValueBytes);
        Assert.Single(EnvVariables.Parse(EnvVariables.Serialize([new EnvVariable("A", atLimit)]), ["A"]).Variables);

        var error = Assert.Throws<AttestationException>(() => EnvVariables.Parse(EnvVariables.Serialize([new EnvVariable("A", atLimit + "v")]), ["A"]));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    [Fact]
    public void TotalSize_RejectsOverOneMiB()
    {
        var value = new string('v', EnvVariables.MaxValueBytes);
        var names = Enumerable.Range(0, 8).Select(i => $"V{i}").ToArray();
        // 8 values of 128 KiB plus names exceed 1 MiB; 7 do not.
        Assert.Equal(7, EnvVariables.Parse(EnvVariables.Serialize(names[..7].Select(n => new EnvVariable(n, value))), names).Variables.Count);
        var error = Assert.Throws<AttestationException>(() => EnvVariables.Parse(EnvVariables.Serialize(names.Select(n => new EnvVariable(n, value))), names));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
    }

    [Fact]
    public void RenderDotEnv_QuotesAndEscapesAsDstack()
    {
        var text = EnvVariables.RenderDotEnv(
        [
            new EnvVariable("PLAIN", "abc=def"),
            new EnvVariable("SPACE", "a b"),
            new EnvVariable("SPECIAL", "x\"$`\\\ny"),
            new EnvVariable("EMPTY", ""),
        ]);
        Assert.Equal("PLAIN=abc=def\nSPACE=\"a b\"\nSPECIAL=\"x\\\"\\$\\`\\\\ny\"\nEMPTY=\n", text);
    }

    [Fact]
    public void RenderJson_IsAnObjectOfNamesToValues()
    {
        var json = EnvVariables.RenderJson([new EnvVariable("A", "1"), new EnvVariable("B", "x\"y")]);
        Assert.Equal("{\"A\":\"1\",\"B\":\"x\\\"y\"}", Encoding.UTF8.GetString(json));
    }

    [Fact]
    public void Serialize_ThenParse_RoundTripsUnicodeAndControlCharacters()
    {
        var value = "päss\tword\n\u0001+<>&";
        var parsed = EnvVariables.Parse(EnvVariables.Serialize([new EnvVariable("TOKEN", value)]), ["TOKEN"]);
        Assert.Equal(value, Assert.Single(parsed.Variables).Value);
    }

    [Fact]
    public void EnvVariable_ToString_HidesTheValue()
    {
        Assert.DoesNotContain("hunter2", new EnvVariable("PASSWORD", "hunter2").ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void EnvFile_ParsesLikeVmmCli()
    {
        var variables = EnvFile.Parse("# comment\n\n  A = 1 \nB=x=y\r\nC=\n   # indented comment\nD=\"quoted\"\n");
        Assert.Equal(["A", "B", "C", "D"], variables.Select(v => v.Key));
        Assert.Equal(["1", "x=y", "", "\"quoted\""], variables.Select(v => v.Value));
    }

    [Theory]
    [InlineData("NOEQUALS")]
    [InlineData("1BAD=x")]
    [InlineData("=x")]
    public void EnvFile_RejectsBadLines(string line)
    {
        var error = Assert.Throws<AttestationException>(() => EnvFile.Parse("OK=1\n" + line + "\n"));
        Assert.Equal(ErrorCode.EnvPayloadInvalid, error.Code);
        Assert.Contains("line 2", error.Message, StringComparison.Ordinal);
    }
}
