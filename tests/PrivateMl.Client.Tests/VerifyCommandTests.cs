using System.CommandLine;
using System.Text.Json;
using PrivateMl.Cli;
using PrivateMl.Client.Tests.Support;
using PrivateMl.Collateral;

namespace PrivateMl.Client.Tests;

/// <summary><c>privateml verify</c> end to end against a hand-built seed node, with collateral from a local directory.</summary>
public sealed class VerifyCommandTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("privateml-verify-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = Program.BuildRoot().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    private async Task<SeedNode> StartNodeAsync(SeedDefects? defects = null)
    {
        var node = new SeedNode(defects, DateTimeOffset.UtcNow);
        await node.StartAsync();
        Directory.CreateDirectory(Path.Combine(_temp, "collateral"));
        await File.WriteAllTextAsync(Path.Combine(_temp, "collateral", "tdx.json"), CollateralJson.Serialize(node.Collateral()), TestContext.Current.CancellationToken);
        await File.WriteAllBytesAsync(Path.Combine(_temp, "app-compose.json"), SeedNode.AppCompose, TestContext.Current.CancellationToken);
        return node;
    }

    private string[] Args(SeedNode node, params string[] extra) =>
        ["verify", node.BaseAddress.ToString(), "--collateral", Path.Combine(_temp, "collateral"), "--offline", "--token", SeedNode.Token, .. extra];

    [Fact]
    public async Task Allow_simulated_passes_every_check_one_line_each_and_exits_0()
    {
        await using var node = await StartNodeAsync();

        var (exit, output, error) = Run(Args(node, "--allow-simulated", "--compose", Path.Combine(_temp, "app-compose.json")));

        Assert.True(exit == 0, output + error);
        Assert.DoesNotContain("✘", output, StringComparison.Ordinal);
        Assert.Contains("✔ report-data.signing-key:", output, StringComparison.Ordinal);
        Assert.Contains("✔ report-data.nonce:", output, StringComparison.Ordinal);
        Assert.Contains("✔ event-log.rtmr3:", output, StringComparison.Ordinal);
        Assert.Contains("✔ app.compose-hash:", output, StringComparison.Ordinal);
        Assert.Contains("– gpu: not checked: no GPU evidence", output, StringComparison.Ordinal);
        Assert.Contains("TRUSTED (SIMULATED)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_provider_other_than_the_measured_one_exits_1_naming_the_check()
    {
        await using var node = await StartNodeAsync();

        var (exit, output, _) = Run(Args(node, "--allow-simulated", "--key-provider", new string('a', 182)));

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("✘ app.key-provider:", output, StringComparison.Ordinal);
        Assert.Contains("NOT TRUSTED: 1 check failed (first: app.key-provider)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_app_id_exits_1_naming_the_check()
    {
        await using var node = await StartNodeAsync();

        var (exit, output, _) = Run(Args(node, "--allow-simulated", "--app-id", new string('0', 40)));

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("✘ app.app-id: app id", output, StringComparison.Ordinal);
        Assert.Contains("not the expected 0000000000000000000000000000000000000000", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_allow_simulated_it_fails_on_the_simulated_root_saying_so_and_exits_1()
    {
        await using var node = await StartNodeAsync();

        var (exit, output, _) = Run(Args(node));

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("✘ policy.simulated: SIMULATED evidence", output, StringComparison.Ordinal);
        Assert.Contains("NOT TRUSTED: 1 check failed (first: policy.simulated)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_output_lists_every_check_for_machines()
    {
        await using var node = await StartNodeAsync(new SeedDefects { UnboundKey = true });

        var (exit, output, _) = Run(Args(node, "--allow-simulated", "--json"));

        Assert.Equal(ExitCodes.Rejected, exit);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("untrusted", doc.RootElement.GetProperty("verdict").GetString());
        Assert.True(doc.RootElement.GetProperty("simulated").GetBoolean());
        var failed = doc.RootElement.GetProperty("checks").EnumerateArray().Where(c => c.GetProperty("outcome").GetString() == "failed").ToList();
        var only = Assert.Single(failed);
        Assert.Equal("report-data.signing-key", only.GetProperty("name").GetString());
        Assert.Equal("SigningKeyNotBound", only.GetProperty("code").GetString());
    }

    [Fact]
    public async Task The_evidence_bundle_reverifies_offline_after_the_node_is_gone()
    {
        var bundle = Path.Combine(_temp, "evidence.json");
        await using (var node = await StartNodeAsync())
        {
            var (first, output, _) = Run(Args(node, "--allow-simulated", "--report", bundle));
            Assert.True(first == 0, output);
        }

        Directory.Delete(Path.Combine(_temp, "collateral"), recursive: true);
        var (exit, again, error) = Run("verify", "--bundle", bundle, "--allow-simulated");

        Assert.True(exit == 0, again + error);
        Assert.Contains("Re-verifying saved evidence", again, StringComparison.Ordinal);
        Assert.Contains("✔ collateral: collateral supplied with the evidence", again, StringComparison.Ordinal);
        Assert.Contains("✔ report-data.nonce:", again, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tampered_bundle_does_not_reverify()
    {
        var bundle = Path.Combine(_temp, "evidence.json");
        await using (var node = await StartNodeAsync())
        {
            Assert.Equal(0, Run(Args(node, "--allow-simulated", "--report", bundle)).Exit);
        }

        using var doc = JsonDocument.Parse(await File.ReadAllBytesAsync(bundle, TestContext.Current.CancellationToken));
        var nonce = doc.RootElement.GetProperty("nonce").GetString()!;
        var other = (nonce[0] == '0' ? "1" : "0") + nonce[1..];
        await File.WriteAllTextAsync(bundle, (await File.ReadAllTextAsync(bundle, TestContext.Current.CancellationToken)).Replace($"\"nonce\": \"{nonce}\"", $"\"nonce\": \"{other}\"", StringComparison.Ordinal), TestContext.Current.CancellationToken);

        var (exit, output, _) = Run("verify", "--bundle", bundle, "--allow-simulated");

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("✘ report-data.nonce:", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Html_report_is_self_contained_and_shows_each_check()
    {
        var html = Path.Combine(_temp, "report.html");
        await using var node = await StartNodeAsync(new SeedDefects { ExtraRtmr3Event = true });

        var (exit, _, _) = Run(Args(node, "--allow-simulated", "--html", html));

        Assert.Equal(ExitCodes.Rejected, exit);
        var page = await File.ReadAllTextAsync(html, TestContext.Current.CancellationToken);
        Assert.Contains("data-trusted=\"false\"", page, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"failed\" data-check=\"event-log.rtmr3\">", page, StringComparison.Ordinal);
        Assert.Contains("<tr class=\"passed\" data-check=\"report-data.nonce\">", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", page, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("src=", page, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("href=", page, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("verify")]
    [InlineData("verify", "http://127.0.0.1:1/", "--offline")]
    [InlineData("verify", "http://127.0.0.1:1/", "--offline", "--collateral", "x", "--pccs", "http://127.0.0.1:2/")]
    [InlineData("verify", "ftp://example/")]
    [InlineData("verify", "--bundle", "/nonexistent/bundle.json")]
    [InlineData("verify", "http://127.0.0.1:1/", "--signing-algo", "rsa")]
    [InlineData("verify", "http://127.0.0.1:1/", "--key-provider", "not-hex")]
    [InlineData("verify", "http://127.0.0.1:1/", "--key-provider", "abc")]
    [InlineData("verify", "http://127.0.0.1:1/", "--app-id", "00")]
    [InlineData("verify", "http://127.0.0.1:1/", "--app-id", "zz00000000000000000000000000000000000000")]
    [InlineData("verify", "http://127.0.0.1:1/", "--gpus", "0")]
    [InlineData("verify", "http://127.0.0.1:1/", "--gpus", "65")]
    [InlineData("chat", "http://127.0.0.1:1/", "hi", "--model", "m", "--gpus", "-1")]
    public void Usage_errors_exit_2(params string[] args)
    {
        var (exit, _, error) = Run(args);

        Assert.Equal(ExitCodes.UsageOrInput, exit);
        Assert.StartsWith("error:", error, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreachable_node_exits_1_with_a_failed_fetch()
    {
        var (exit, output, _) = Run("verify", "http://127.0.0.1:1/", "--collateral", _temp, "--offline");

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("✘ report.fetch:", output, StringComparison.Ordinal);
    }
}
