using System.CommandLine;
using System.Text.Json;
using PrivateMl.Attestation.Verification;
using PrivateMl.Cli.Commands;
using PrivateMl.Testing;

namespace PrivateMl.Cli.Tests;

public sealed class QuoteCommandsTests : IDisposable
{
    private const string Dir = "tdx/dcap-qvl/";
    private readonly string _temp = Directory.CreateTempSubdirectory("privateml-quote-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = Program.Invoke(Program.BuildRoot().Parse(args), new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private static string P(string name) => SharedTestData.PathOf(Dir + name);

    [Fact]
    public void Show_PrintsEveryField_OfABinaryQuote()
    {
        var (exit, output, _) = Run("quote", "show", P("tdx_quote"));
        Assert.Equal(0, exit);
        Assert.Contains("91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7", output, StringComparison.Ordinal);
        Assert.Contains("SEPT_VE_DISABLE", output, StringComparison.Ordinal);
        Assert.Contains("qe_report.mr_signer", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tdx-quote.hex")]
    [InlineData("quote-from-tappd.hex")]
    [InlineData("tdx_quote_outdated")]
    [InlineData("sgx_quote")]
    public void Show_Json_MatchesExpectedFields(string name)
    {
        var (exit, output, _) = Run("quote", "show", P(name), "--json");
        Assert.Equal(0, exit);
        using var shown = JsonDocument.Parse(output);
        using var expected = JsonDocument.Parse(SharedTestData.ReadText("tdx/expected.json"));
        var parsed = expected.RootElement.GetProperty("quotes").GetProperty(name).GetProperty("parsed");
        var compared = 0;
        foreach (var field in new[] { "version", "tee_type", "qe_vendor_id", "user_data", "mr_td", "rtmr0", "rtmr3", "report_data", "tee_tcb_svn", "tee_tcb_svn2", "mr_enclave", "mr_signer", "quote_signature", "attestation_public_key", "qe_auth_data", "certification_data_size" })
        {
            if (parsed.TryGetProperty(field, out var want))
            {
                Assert.Equal(want.ToString(), shown.RootElement.GetProperty(field).ToString());
                compared++;
            }
        }

        Assert.True(compared >= 10);
    }

    [Fact]
    public void Show_AcceptsBase64()
    {
        var path = Path.Combine(_temp, "quote.b64");
        File.WriteAllText(path, Convert.ToBase64String(SharedTestData.ReadBytes(Dir + "sgx_quote")) + "\n");
        var (exit, output, _) = Run("quote", "show", path);
        Assert.Equal(0, exit);
        Assert.Contains("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("this is not a quote")]
    [InlineData("0x0400")]
    public void Show_RejectsBadInput_WithExit2(string content)
    {
        var path = Path.Combine(_temp, "bad.txt");
        File.WriteAllText(path, content);
        var (exit, _, error) = Run("quote", "show", path);
        Assert.Equal(2, exit);
        Assert.StartsWith("error:", error, StringComparison.Ordinal);
        Assert.Equal(2, Run("quote", "show", Path.Combine(_temp, "missing")).Exit);
    }

    [Fact]
    public void Verify_AcceptsTdxQuote_InsideItsWindow_OneLinePerCheck()
    {
        var (exit, output, _) = Run("quote", "verify", P("tdx_quote"), "--collateral", P("tdx_quote_collateral.json"), "--at", "1750400000");
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("✔ quote.signature", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("✔ tcb.status", StringComparison.Ordinal) && l.Contains("UpToDate", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith('✘'));
        Assert.StartsWith("ACCEPTED", lines[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_AcceptsIso8601Time_LikeUnixSeconds()
    {
        var unix = Run("quote", "verify", P("tdx_quote"), "--collateral", P("tdx_quote_collateral.json"), "--at", "1750400000", "--json");
        var iso = Run("quote", "verify", P("tdx_quote"), "--collateral", P("tdx_quote_collateral.json"), "--at", "2025-06-20T06:13:20Z", "--json");
        Assert.Equal(unix, iso);
    }

    [Fact]
    public void Verify_RejectsNoMatchingTcbLevel_NamingTheComponent()
    {
        var (exit, output, _) = Run("quote", "verify", P("tdx_quote_outdated"), "--collateral", P("tdx_quote_outdated_collateral.json"), "--at", "1772000000");
        Assert.Equal(1, exit);
        Assert.Contains(output.Split('\n'), l => l.StartsWith("✘ tcb.platform-level", StringComparison.Ordinal) && l.Contains("SEAMLDR ACM", StringComparison.Ordinal));
        Assert.Contains("REJECTED: TcbLevelNotFound", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_Json_ReportsExpiredCollateral()
    {
        var (exit, output, _) = Run("quote", "verify", P("sgx_quote"), "--collateral", P("sgx_quote_collateral.json"), "--at", "1753000000", "--json");
        Assert.Equal(1, exit);
        using var doc = JsonDocument.Parse(output);
        Assert.False(doc.RootElement.GetProperty("accepted").GetBoolean());
        Assert.Equal(nameof(ErrorCode.CollateralExpired), doc.RootElement.GetProperty("error").GetString());
        Assert.Contains(doc.RootElement.GetProperty("checks").EnumerateArray(), c => c.GetProperty("name").GetString() == "tcb-info.validity" && c.GetProperty("outcome").GetString() == "Failed");
    }

    [Fact]
    public void Verify_DefaultPolicy_RejectsNonUpToDate_ListingAdvisories()
    {
        var (exit, output, _) = Run("quote", "verify", P("sgx_quote"), "--collateral", P("sgx_quote_collateral.json"), "--at", "1750400000", "--json");
        Assert.Equal(1, exit);
        using var doc = JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("authentic").GetBoolean());
        Assert.Equal("ConfigurationAndSWHardeningNeeded", doc.RootElement.GetProperty("status").GetString());
        Assert.Equal(["INTEL-SA-00289", "INTEL-SA-00615"], doc.RootElement.GetProperty("advisory_ids").EnumerateArray().Select(a => a.GetString()));
        var tcbStatus = doc.RootElement.GetProperty("policy").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "policy.tcb.status");
        Assert.Equal(nameof(ErrorCode.TcbStatusNotAccepted), tcbStatus.GetProperty("code").GetString());
    }

    [Fact]
    public void Verify_PolicyFile_AdmittingTheStatusAndItsAdvisories_Accepts()
    {
        var policy = Path.Combine(_temp, "policy.json");
        File.WriteAllText(policy, """{"acceptedTcbStatuses": ["ConfigurationAndSWHardeningNeeded"], "allowedAdvisoryIds": ["INTEL-SA-00289", "INTEL-SA-00615"]}""");
        var (exit, output, _) = Run("quote", "verify", P("sgx_quote"), "--collateral", P("sgx_quote_collateral.json"), "--at", "1750400000", "--policy", policy);
        Assert.Equal(0, exit);
        Assert.Contains("✔ policy.tcb.status", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_PolicyFile_MissingOneAdvisory_Rejects()
    {
        var policy = Path.Combine(_temp, "policy.json");
        File.WriteAllText(policy, """{"acceptedTcbStatuses": ["ConfigurationAndSWHardeningNeeded"], "allowedAdvisoryIds": ["INTEL-SA-00289"]}""");
        var (exit, output, _) = Run("quote", "verify", P("sgx_quote"), "--collateral", P("sgx_quote_collateral.json"), "--at", "1750400000", "--policy", policy, "--json");
        Assert.Equal(1, exit);
        Assert.Contains(nameof(ErrorCode.AdvisoryNotAccepted), output, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_BadPolicyFile_IsAUsageError_NamingTheMember()
    {
        var policy = Path.Combine(_temp, "policy.json");
        File.WriteAllText(policy, """{"mrTd": "abcd"}""");
        var (exit, _, error) = Run("quote", "verify", P("tdx_quote"), "--collateral", P("tdx_quote_collateral.json"), "--at", "1750400000", "--policy", policy);
        Assert.Equal(2, exit);
        Assert.Contains("mrTd", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_SimulatedQuote_NeedsTheExplicitRoot_AndSaysSimulated()
    {
        var state = Path.Combine(_temp, "sim");
        Assert.Equal(0, Run("simulator", "init", "--state", state).Exit);
        var quote = Path.Combine(_temp, "quote.bin");
        var collateral = Path.Combine(_temp, "collateral.json");
        var root = Path.Combine(_temp, "root.pem");
        Assert.Equal(0, Run("simulator", "quote", "--state", state, "-d", "01", "--out", quote).Exit);
        Assert.Equal(0, Run("simulator", "collateral", "--state", state, "--out", collateral).Exit);
        var rootRun = Run("simulator", "root", "--state", state);
        Assert.Equal(0, rootRun.Exit);
        File.WriteAllText(root, rootRun.Out);

        var strict = Run("quote", "verify", quote, "--collateral", collateral, "--json");
        Assert.Equal(1, strict.Exit);

        var halfSwitch = Run("quote", "verify", quote, "--collateral", collateral, "--allow-simulated");
        Assert.Equal(2, halfSwitch.Exit);

        var simulated = Run("quote", "verify", quote, "--collateral", collateral, "--allow-simulated", "--trust-root", root);
        Assert.Equal(0, simulated.Exit);
        Assert.Contains("SIMULATED", simulated.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--at", "yesterday")]
    [InlineData("--collateral", "missing.json")]
    public void Verify_BadArguments_AreUsageErrors(string option, string value)
    {
        var args = new List<string> { "quote", "verify", P("tdx_quote") };
        if (option == "--at")
        {
            args.AddRange(["--collateral", P("tdx_quote_collateral.json")]);
        }

        args.AddRange([option, option == "--collateral" ? Path.Combine(_temp, value) : value]);
        Assert.Equal(2, Run([.. args]).Exit);
        Assert.Equal(2, Run("quote", "verify", P("tdx_quote")).Exit); // no --collateral
        Assert.Equal(2, Run("quote", "verify").Exit); // no FILE: a parse error
        Assert.Equal(2, Run("quote", "show", P("tdx_quote"), "--no-such-option").Exit);
    }

    [Fact]
    public void Verify_MalformedCollateral_IsAnInputError()
    {
        var path = Path.Combine(_temp, "collateral.json");
        File.WriteAllText(path, "{\"pck_crl\": \"zz\"}");
        var (exit, _, error) = Run("quote", "verify", P("tdx_quote"), "--collateral", path, "--at", "1750400000");
        Assert.Equal(2, exit);
        Assert.Contains("collateral", error, StringComparison.Ordinal);
    }
}
