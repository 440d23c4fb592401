using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Vmm.Compose;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.Compose;

/// <summary>
/// app-compose.json as vmm-cli.py writes it (dstack.md §8.2): Python <c>json.dumps(indent=4, ensure_ascii=False)</c>
/// of a dict in vmm-cli's key order. The compose hash is over these bytes, so they must match exactly.
/// </summary>
public sealed class AppComposeBuilderTests
{
    // dstack.md §8.2: vmm-cli's insertion order.
    private static readonly string[] VmmCliKeyOrder =
    [
        "manifest_version", "name", "runner", "docker_compose_file", "kms_enabled", "gateway_enabled", "local_key_provider_enabled",
        "key_provider_id", "public_logs", "public_sysinfo", "allowed_envs", "no_instance_id", "secure_time", "pre_launch_script", "swap_size",
    ];

    private static AppComposeOptions Tricky => new()
    {
        Name = "app ü \"q\" \\ /",
        DockerComposeFile = "services:\n  a:\n    command: [\"sh\", \"-c\", \"echo\\tx\"]\r\n\u0001\u001f\u007f é 中 \u2028 😀 </script>\n",
        PreLaunchScript = "echo pre\n",
        Kms = true,
        LocalKeyProvider = true,
        KeyProviderId = "0xabcd",
        PublicSysinfo = true,
        AllowedEnvs = ["FOO", "BAR_2"],
        SecureTime = true,
        SwapMegabytes = 1536,
    };

    [Fact]
    public void Output_IsByteIdenticalTo_PythonJsonDumps()
    {
        var options = Tricky;
        var ours = AppComposeBuilder.VmmCli(options);

        // The same dict, built in vmm-cli's order, dumped by CPython itself; values come in as JSON on stdin.
        var input = JsonSerializer.Serialize(new object[]
        {
            options.Name, options.DockerComposeFile, options.Kms, options.Gateway, options.LocalKeyProvider, options.KeyProviderId!,
            options.PublicLogs, options.PublicSysinfo, options.AllowedEnvs, options.NoInstanceId, options.SecureTime, options.PreLaunchScript!, options.SwapMegabytes!.Value,
        });
        var python = Python.Run("""
            import json, sys
            v = json.loads(sys.stdin.buffer.read().decode('utf-8'))
            d = {"manifest_version": 2, "name": v[0], "runner": "docker-compose", "docker_compose_file": v[1], "kms_enabled": v[2],
                 "gateway_enabled": v[3], "local_key_provider_enabled": v[4], "key_provider_id": v[5], "public_logs": v[6],
                 "public_sysinfo": v[7], "allowed_envs": v[8], "no_instance_id": v[9], "secure_time": v[10]}
            d["pre_launch_script"] = v[11]
            d["swap_size"] = max(0, int(round(v[12])) * 1024 * 1024)
            sys.stdout.buffer.write(json.dumps(d, indent=4, ensure_ascii=False).encode('utf-8'))
            """, input);

        Assert.Equal(Encoding.UTF8.GetString(python), Encoding.UTF8.GetString(ours));
        Assert.Equal(python, ours);
    }

    [Fact]
    public void Keys_ComeInVmmCliOrder_AndOptionalOnesOnlyWhenGiven()
    {
        var full = Keys(AppComposeBuilder.VmmCli(Tricky));
        var minimal = Keys(AppComposeBuilder.VmmCli(new AppComposeOptions { Name = "a", DockerComposeFile = "x", SwapMegabytes = 0 }));

        Assert.Equal(VmmCliKeyOrder, full);
        Assert.Equal(VmmCliKeyOrder[..13], minimal);
    }

    [Fact]
    public void Escapes_OnlyWhatPythonEscapes()
    {
        var text = Encoding.UTF8.GetString(AppComposeBuilder.VmmCli(new AppComposeOptions { Name = "\"\\\n\r\t\b\f\u0001\u001fé\u007f/", DockerComposeFile = "" }));

        Assert.Contains("\"name\": \"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001fé\u007f/\",", text, StringComparison.Ordinal);
        Assert.Contains("\"allowed_envs\": [],", text, StringComparison.Ordinal);
        Assert.StartsWith("{\n    \"manifest_version\": 2,\n", text, StringComparison.Ordinal);
        Assert.EndsWith("\n    \"secure_time\": false\n}", text, StringComparison.Ordinal);
    }

    [Fact]
    public void ComposeHash_IsSha256OfTheBytes_AndAppIdItsFirst20Bytes()
    {
        var bytes = AppComposeBuilder.VmmCli(Tricky);

        var compose = AppCompose.Parse(bytes);

        Assert.Equal(SHA256.HashData(bytes), compose.ComposeHash);
        Assert.Equal(SHA256.HashData(bytes)[..20], compose.DefaultAppId);
        Assert.Equal(KeyProviderKind.Kms, compose.KeyProvider);
        Assert.Equal([0xab, 0xcd], compose.KeyProviderId);
        Assert.Equal(["FOO", "BAR_2"], compose.AllowedEnvs);
    }

    [Fact]
    public void DstackPy_WritesManifestVersion1_InItsOrder()
    {
        var text = Encoding.UTF8.GetString(AppComposeBuilder.DstackPy("services: {}\n", localKeyProvider: true));

        Assert.Equal(["manifest_version", "name", "version", "features", "runner", "docker_compose_file", "local_key_provider_enabled", "secure_time"], Keys(Encoding.UTF8.GetBytes(text)));
        Assert.Contains("\"features\": [],", text, StringComparison.Ordinal);
        Assert.Equal(KeyProviderKind.Local, AppCompose.Parse(text).KeyProvider);
    }

    [Fact]
    public void EnvFile_FollowsVmmCli_SkipsCommentsAndLinesWithoutEquals_LastValueWins()
    {
        var env = CliEnvFile.Parse("# c\n\nFOO = bar baz \r\nnoequals\n B=1=2\nFOO=again\n\u001cC=x\u001f");

        Assert.Equal(["FOO", "B", "C"], env.Select(e => e.Key));
        Assert.Equal(["again", "1=2", "x"], env.Select(e => e.Value));
    }

    private static List<string> Keys(byte[] json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.EnumerateObject().Select(p => p.Name).ToList();
    }
}
