using System.CommandLine;
using System.Text.Json;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;
using PrivateMl.Attestation.Verification;
using PrivateMl.Cli;
using PrivateMl.Client.Tests.Support;
using PrivateMl.Collateral;

namespace PrivateMl.Client.Tests.Html;

/// <summary>
/// <c>privateml verify … --html FILE</c> rendered in real headless Chromium and checked as a person would see it: the
/// DOM after rendering (verdict, one row per check, evidence) and the screenshot's colours. The page and its
/// screenshot are kept under the test's output folder (<c>artifacts/html/</c>) for a person to look at.
/// </summary>
public sealed class NodeReportBrowserTests : IDisposable
{
    private static readonly (byte, byte, byte) Green = (0x1a, 0x7f, 0x37);
    private static readonly (byte, byte, byte) Red = (0xcf, 0x22, 0x2e);
    private static readonly (byte, byte, byte) Amber = (0x9a, 0x67, 0x00);

    private static readonly string Artifacts = Path.Combine(AppContext.BaseDirectory, "artifacts", "html");

    private readonly string _temp = Directory.CreateTempSubdirectory("privateml-html-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task Allowed_simulated_evidence_renders_amber_with_every_check_and_its_evidence()
    {
        HeadlessChromium.RequireBinary();
        await using var node = await StartNodeAsync();

        var (exit, json, dom, png) = await VerifyAndRenderAsync(node, "allowed-simulated", "--allow-simulated");

        Assert.Equal(ExitCodes.Accepted, exit);
        var verdict = dom.GetElementById("verdict")!;
        Assert.Equal("TRUSTED (SIMULATED)", verdict.TextContent);
        Assert.Contains("simulated", verdict.ClassList);
        Assert.Equal("true", verdict.GetAttribute("data-trusted"));
        Assert.Null(dom.GetElementById("failures"));
        Assert.Contains("SIMULATED evidence", dom.GetElementById("simulated")!.TextContent, StringComparison.Ordinal);
        AssertChecksMatch(json, dom);
        Assert.DoesNotContain(dom.QuerySelectorAll("#checks tr[data-check]"), row => row.ClassName == "failed");
        AssertEvidence(json, dom, node);
        AssertSelfContained(dom);

        Assert.True(png.Count(Amber, 0, 150) > 20_000, "no amber verdict banner at the top of the screenshot");
        Assert.True(png.Count(Red, 0, 150) < 50, "red at the top of a trusted report");
        Assert.True(png.Count(Green, 0, 150) < 50, "a SIMULATED verdict must not be shown green");
    }

    [Fact]
    public async Task Strict_mode_on_simulated_evidence_renders_red_with_the_failed_check()
    {
        HeadlessChromium.RequireBinary();
        await using var node = await StartNodeAsync();

        var (exit, json, dom, png) = await VerifyAndRenderAsync(node, "strict-simulated");

        Assert.Equal(ExitCodes.Rejected, exit);
        var verdict = dom.GetElementById("verdict")!;
        Assert.Equal("NOT TRUSTED", verdict.TextContent);
        Assert.Contains("untrusted", verdict.ClassList);
        Assert.Equal("false", verdict.GetAttribute("data-trusted"));
        Assert.Contains("first failure: policy.simulated", dom.GetElementById("summary")!.TextContent, StringComparison.Ordinal);
        Assert.NotNull(dom.GetElementById("simulated"));
        AssertChecksMatch(json, dom);
        var failed = Assert.Single(dom.QuerySelectorAll("#checks tr.failed"));
        Assert.Equal("policy.simulated", failed.GetAttribute("data-check"));
        Assert.Equal("✘", failed.QuerySelector("td.o")!.TextContent);
        Assert.Contains("SIMULATED", failed.TextContent, StringComparison.Ordinal);
        var listed = Assert.Single(dom.QuerySelectorAll("#failures li"));
        Assert.Equal("policy.simulated", listed.GetAttribute("data-check"));
        AssertEvidence(json, dom, node);
        AssertSelfContained(dom);

        Assert.True(png.Count(Red, 0, 150) > 20_000, "no red verdict banner at the top of the screenshot");
        Assert.True(png.Count(Green, 0, 150) < 50, "green at the top of an untrusted report");
        Assert.True(png.Count(Red, 150, 300) > 200, "the failed check is not listed in red under the verdict");
    }

    [Fact]
    public async Task A_trusted_verdict_from_real_hardware_renders_green_without_the_simulated_marker()
    {
        HeadlessChromium.RequireBinary();
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();
        var simulated = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        Assert.True(simulated.Trusted);

        // Real hardware cannot be had here: take the accepted result and clear only the flag the renderer keys on.
        var (dom, png) = await RenderAsync(NodeReportHtml.Render(simulated with { IsSimulated = false }), "trusted");

        var verdict = dom.GetElementById("verdict")!;
        Assert.Equal("TRUSTED", verdict.TextContent);
        Assert.Contains("trusted", verdict.ClassList);
        Assert.Null(dom.GetElementById("simulated"));
        Assert.Equal(simulated.Checks.Count, dom.QuerySelectorAll("#checks tr[data-check]").Length);
        Assert.True(png.Count(Green, 0, 150) > 20_000, "no green verdict banner at the top of the screenshot");
        Assert.True(png.Count(Amber, 0, 150) < 50, "amber at the top of a non-simulated trusted report");
    }

    [Fact]
    public async Task Values_from_the_node_are_shown_as_text_never_as_markup()
    {
        HeadlessChromium.RequireBinary();
        await using var node = new SeedNode();
        await node.StartAsync();
        using var http = new HttpClient();
        var result = await new NodeVerifier(http, node.Options()).VerifyAsync(node.BaseAddress, TestContext.Current.CancellationToken);
        const string hostile = "<img src=\"https://evil.example/x.png\"><script>document.title='owned'</script>";
        var tampered = result with
        {
            Checks = [.. result.Checks, new CheckResult("hostile<b>", CheckOutcome.Failed, hostile)],
            Verdict = NodeVerdict.Untrusted,
        };

        var (dom, _) = await RenderAsync(NodeReportHtml.Render(tampered), "escaping");

        Assert.Empty(dom.QuerySelectorAll("img, script, b"));
        Assert.StartsWith("privateml verify: ", dom.Title, StringComparison.Ordinal);
        var rows = dom.QuerySelectorAll("#checks tr[data-check]");
        var row = rows[^1];
        Assert.Equal("hostile<b>", row.GetAttribute("data-check"));
        Assert.Contains(hostile, row.TextContent, StringComparison.Ordinal);
        AssertSelfContained(dom);
    }

    private static void AssertChecksMatch(JsonElement json, IDocument dom)
    {
        var expected = json.GetProperty("checks").EnumerateArray()
            .Select(c => (Name: c.GetProperty("name").GetString(), Outcome: c.GetProperty("outcome").GetString()))
            .ToList();
        var rows = dom.QuerySelectorAll("#checks tr[data-check]");
        Assert.Equal(expected.Count, rows.Length);
        Assert.True(expected.Count >= 20, $"only {expected.Count} checks");
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Name, rows[i].GetAttribute("data-check"));
            var (cls, mark) = expected[i].Outcome switch
            {
                "passed" => ("passed", "✔"),
                "failed" => ("failed", "✘"),
                _ => ("skipped", "–"),
            };
            Assert.Equal(cls, rows[i].ClassName);
            Assert.Equal(mark, rows[i].QuerySelector("td.o")!.TextContent);
        }
    }

    private static void AssertEvidence(JsonElement json, IDocument dom, SeedNode node)
    {
        var evidence = dom.QuerySelectorAll("#evidence tr").ToDictionary(r => r.QuerySelector("th")!.TextContent, r => r.QuerySelector("td")!.TextContent);
        Assert.Equal(json.GetProperty("nonce").GetString(), evidence["Nonce"]);
        Assert.Matches("^[0-9a-f]{64}$", evidence["Nonce"]);
        Assert.StartsWith(node.SigningAddress + " (", evidence["Signing key"], StringComparison.Ordinal);
        Assert.Equal(json.GetProperty("tcb_status").GetString(), evidence["TCB status"]);
        Assert.Equal("UpToDate", evidence["TCB status"]);
        Assert.Equal("none", evidence["Advisories"]);
        Assert.Equal("SIMULATED root (not Intel)", evidence["Root of trust"]);
        var measurements = json.GetProperty("measurements");
        foreach (var (row, field) in new[] { ("MR_TD", "mr_td"), ("RTMR0", "rtmr0"), ("RTMR1", "rtmr1"), ("RTMR2", "rtmr2"), ("RTMR3", "rtmr3"), ("MR_CONFIG_ID", "mr_config_id"), ("report_data", "report_data") })
        {
            Assert.Equal(measurements.GetProperty(field).GetString(), evidence[row]);
            Assert.Matches("^[0-9a-f]{96}$|^[0-9a-f]{128}$", evidence[row]);
        }

        Assert.Equal(Convert.ToHexStringLower(node.ComposeHash), evidence["Compose hash"]);
        Assert.Equal("no GPU evidence", evidence["GPU"]);
    }

    private static void AssertSelfContained(IDocument dom)
    {
        foreach (var element in dom.All)
        {
            foreach (var attribute in element.Attributes)
            {
                Assert.False(
                    attribute.Name is "src" or "href" or "srcset" or "action" or "poster" or "data" && attribute.Value.Length > 0,
                    $"<{element.LocalName} {attribute.Name}=\"{attribute.Value}\"> loads a resource");
                Assert.DoesNotMatch("(?i)https?:", attribute.Name == "data-check" ? string.Empty : attribute.Value);
            }
        }

        Assert.Empty(dom.QuerySelectorAll("script, link, img, iframe, object, embed, video, audio, source, base"));
        foreach (var style in dom.QuerySelectorAll("style"))
        {
            Assert.DoesNotMatch("(?i)url\\(|@import", style.TextContent);
        }
    }

    private async Task<SeedNode> StartNodeAsync()
    {
        var node = new SeedNode(null, DateTimeOffset.UtcNow);
        await node.StartAsync();
        Directory.CreateDirectory(Path.Combine(_temp, "collateral"));
        await File.WriteAllTextAsync(Path.Combine(_temp, "collateral", "tdx.json"), CollateralJson.Serialize(node.Collateral()), TestContext.Current.CancellationToken);
        return node;
    }

    private async Task<(int Exit, JsonElement Json, IDocument Dom, Png Png)> VerifyAndRenderAsync(SeedNode node, string name, params string[] extra)
    {
        var html = Path.Combine(_temp, name + ".html");
        var output = new StringWriter();
        var error = new StringWriter();
        string[] args = ["verify", node.BaseAddress.ToString(), "--collateral", Path.Combine(_temp, "collateral"), "--offline", "--token", SeedNode.Token, "--json", "--html", html, .. extra];
        var exit = Program.BuildRoot().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        Assert.True(File.Exists(html), output.ToString() + error);
        using var json = JsonDocument.Parse(output.ToString());
        var (dom, png) = await RenderAsync(await File.ReadAllTextAsync(html, TestContext.Current.CancellationToken), name);
        return (exit, json.RootElement.Clone(), dom, png);
    }

    private static async Task<(IDocument Dom, Png Png)> RenderAsync(string page, string name)
    {
        Directory.CreateDirectory(Artifacts);
        var html = Path.Combine(Artifacts, name + ".html");
        var screenshot = Path.Combine(Artifacts, name + ".png");
        File.Delete(screenshot);
        await File.WriteAllTextAsync(html, page, TestContext.Current.CancellationToken);
        var rendered = await HeadlessChromium.RenderAsync(html, screenshot, TestContext.Current.CancellationToken);
        var dom = await new HtmlParser().ParseDocumentAsync(rendered, TestContext.Current.CancellationToken);
        var png = Png.Read(await File.ReadAllBytesAsync(screenshot, TestContext.Current.CancellationToken));
        Assert.Equal((HeadlessChromium.Width, HeadlessChromium.Height), (png.Width, png.Height));
        return (dom, png);
    }
}
