using System.Buffers.Binary;
using System.CommandLine;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Testing;

namespace PrivateMl.Cli.Tests;

public sealed class SimulatorCommandsTests : IDisposable
{
    private readonly string _state = Path.Combine(Path.GetTempPath(), "privateml-cli-sim-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));

    public void Dispose()
    {
        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }
    }

    private static (int Code, string Output, string Error) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = Program.BuildRoot().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Init_then_quote_writes_a_quote_over_the_report_data()
    {
        var init = Run("simulator", "init", "--state", _state);
        Assert.Equal(0, init.Code);
        Assert.Contains("SIMULATED", init.Output, StringComparison.Ordinal);

        var file = Path.Combine(_state, "out.quote");
        var quote = Run("simulator", "quote", "--state", _state, "--report-data", "0xdeadbeef", "--out", file);

        Assert.Equal(0, quote.Code);
        var bytes = File.ReadAllBytes(file);
        Assert.Equal(4, BinaryPrimitives.ReadUInt16LittleEndian(bytes));
        Assert.Equal(Convert.FromHexString("deadbeef").Concat(new byte[60]).ToArray(), bytes[568..632]);
    }

    [Fact]
    public void Quote_prints_hex_by_default_and_keeps_the_identity_across_runs()
    {
        Assert.Equal(0, Run("simulator", "init", "--state", _state).Code);

        var firstRun = Run("simulator", "quote", "--state", _state, "-d", "01");
        Assert.Contains("SIMULATED", firstRun.Error, StringComparison.Ordinal);
        var first = Convert.FromHexString(firstRun.Output.Trim());
        var second = Convert.FromHexString(Run("simulator", "quote", "--state", _state, "-d", "02").Output.Trim());

        Assert.Equal(first[700..764], second[700..764]); // attestation public key at 636 + 64
        Assert.Equal(1, first[568]);
        Assert.Equal(2, second[568]);
    }

    [Theory]
    [InlineData("zz")]
    [InlineData("abc")]
    public void Quote_rejects_bad_hex_with_exit_2(string hex)
    {
        Assert.Equal(0, Run("simulator", "init", "--state", _state).Code);

        var result = Run("simulator", "quote", "--state", _state, "--report-data", hex);

        Assert.Equal(2, result.Code);
        Assert.Contains("--report-data", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Quote_rejects_report_data_over_64_bytes_and_missing_state()
    {
        Assert.Equal(2, Run("simulator", "quote", "--state", _state, "-d", "00").Code);
        Assert.Equal(0, Run("simulator", "init", "--state", _state).Code);

        var result = Run("simulator", "quote", "--state", _state, "-d", new string('a', 130));

        Assert.Equal(2, result.Code);
        Assert.Contains("at most 64", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Init_refuses_to_overwrite_without_force()
    {
        Assert.Equal(0, Run("simulator", "init", "--state", _state).Code);
        var root = File.ReadAllText(Path.Combine(_state, "root-ca.crt"));

        Assert.Equal(2, Run("simulator", "init", "--state", _state).Code);
        Assert.Equal(root, File.ReadAllText(Path.Combine(_state, "root-ca.crt")));
        Assert.Equal(0, Run("simulator", "init", "--state", _state, "--force").Code);
        Assert.NotEqual(root, File.ReadAllText(Path.Combine(_state, "root-ca.crt")));
    }

    [Fact]
    public void Init_applies_a_profile_and_rejects_a_bad_one()
    {
        var profile = Path.Combine(Path.GetTempPath(), $"profile-{Guid.NewGuid():N}.json");
        try
        {
            var mrTd = new string('a', 96);
            File.WriteAllText(profile, $"{{\"mr_td\":\"{mrTd}\"}}");
            Assert.Equal(0, Run("simulator", "init", "--state", _state, "--profile", profile).Code);
            var quote = Convert.FromHexString(Run("simulator", "quote", "--state", _state, "-d", "00").Output.Trim());
            Assert.Equal(Convert.FromHexString(mrTd), quote[184..232]);

            File.WriteAllText(profile, "{\"mr_td\":\"abcd\"}");
            var bad = Run("simulator", "init", "--state", _state, "--profile", profile, "--force");
            Assert.Equal(2, bad.Code);
            Assert.Contains("mr_td", bad.Error, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(profile);
        }
    }

    [Fact]
    public void Collateral_is_dcap_qvl_json_signed_by_the_simulated_tcb_signer()
    {
        Assert.Equal(0, Run("simulator", "init", "--state", _state).Code);
        var file = Path.Combine(_state, "collateral.json");

        Assert.Equal(0, Run("simulator", "collateral", "--state", _state, "--out", file).Code);

        var collateral = JsonSerializer.Deserialize<DcapCollateral>(File.ReadAllText(file))!;
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(collateral.TcbInfoIssuerChain);
        using var key = chain[0].GetECDsaPublicKey()!;
        Assert.True(key.VerifyData(Encoding.UTF8.GetBytes(collateral.TcbInfo), collateral.TcbInfoSignature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        Assert.Contains("SIMULATED", chain[1].Subject, StringComparison.Ordinal);

        var root = Run("simulator", "root", "--state", _state);
        Assert.Equal(0, root.Code);
        Assert.Equal(chain[1].RawData, X509Certificate2.CreateFromPem(root.Output).RawData);
    }

    [Fact]
    public async Task Pccs_serves_tcb_info_until_cancelled()
    {
        Assert.Equal(0, Run("simulator", "init", "--state", _state).Code);
        var port = FreePort.OnLoopback();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var output = new StringWriter();
        var server = Program.BuildRoot().Parse(["simulator", "pccs", "--state", _state, "--listen", $"http://127.0.0.1:{port}"])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = new StringWriter() }, cts.Token);

        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        HttpResponseMessage? response = null;
        for (var attempt = 0; attempt < 100 && response is null; attempt++)
        {
            try
            {
                response = await client.GetAsync("/tdx/certification/v4/qe/identity", TestContext.Current.CancellationToken);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }
        }

        Assert.NotNull(response);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("SGX-Enclave-Identity-Issuer-Chain"));
        response.Dispose();

        await cts.CancelAsync();
        Assert.Equal(0, await server);
    }
}
