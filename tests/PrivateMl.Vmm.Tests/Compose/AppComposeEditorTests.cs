using System.Text;
using System.Text.Json;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.Compose;

/// <summary>Editing a deployed compose as vmm-cli does (json.loads → change → json.dumps(indent=4, ensure_ascii=False)).</summary>
public sealed class AppComposeEditorTests
{
    private static readonly string Original = Encoding.UTF8.GetString(AppComposeBuilder.VmmCli(new AppComposeOptions
    {
        Name = "démo \"q\"",
        DockerComposeFile = "services:\n  app:\n    image: nginx\n    command: [\"a\\tb\"]\n",
        Kms = true,
        AllowedEnvs = ["A", "B"],
        SwapMegabytes = 512,
    }));

    [Fact]
    public void AnUntouchedCompose_RoundTripsByteForByte()
    {
        Assert.Equal(Original, AppComposeEditor.Parse(Original).ToJson());
    }

    [Fact]
    public void Swap_IsReplacedInPlace_OrRemoved_AndNewKeysGoLast()
    {
        var replaced = AppComposeEditor.Parse(Original);
        replaced.SetSwapMegabytes(4096);
        var removed = AppComposeEditor.Parse(Original);
        removed.SetSwapMegabytes(0);
        removed.Set("launch_token_hash", "ab");

        Assert.Equal(Original.Replace("\"swap_size\": 536870912", "\"swap_size\": 4294967296", StringComparison.Ordinal), replaced.ToJson());
        var keys = JsonDocument.Parse(removed.ToJson()).RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.DoesNotContain("swap_size", keys);
        Assert.Equal("launch_token_hash", keys[^1]);
    }

    [Fact]
    public void Edits_MatchCPython()
    {
        var editor = AppComposeEditor.Parse(Original);
        editor.Set("allowed_envs", new List<string> { "X", "Ÿ" });
        editor.Set("docker_compose_file", "new: \"yaml\"\n");
        editor.Remove("pre_launch_script");
        editor.SetSwapMegabytes(0);
        editor.Set("nested", new List<KeyValuePair<string, object?>> { new("n", 1L), new("list", new List<object?> { 1L, "two", null, true }) });

        var python = Python.Run("""
            import json, sys
            d = json.loads(sys.stdin.buffer.read().decode('utf-8'))
            d["allowed_envs"] = ["X", "Ÿ"]
            d["docker_compose_file"] = 'new: "yaml"\n'
            d.pop("pre_launch_script", None)
            d.pop("swap_size", None)
            d["nested"] = {"n": 1, "list": [1, "two", None, True]}
            sys.stdout.buffer.write(json.dumps(d, indent=4, ensure_ascii=False).encode('utf-8'))
            """, Original);

        Assert.Equal(Encoding.UTF8.GetString(python), editor.ToJson());
    }

    [Theory]
    [InlineData("[1]")]
    [InlineData("{\"a\": 1.5}")]
    [InlineData("{\"a\": 1e3}")]
    [InlineData("{")]
    public void WhatCannotBeReprintedAsPythonWould_IsRefused(string json)
    {
        Assert.Equal(VmmErrorCode.InvalidCompose, Assert.Throws<VmmException>(() => AppComposeEditor.Parse(json)).Code);
    }
}
