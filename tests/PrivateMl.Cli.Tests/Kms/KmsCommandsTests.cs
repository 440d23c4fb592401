using System.CommandLine;
using System.Security.Cryptography;
using PrivateMl.Agent.Keys;
using PrivateMl.Kms.Keys;

namespace PrivateMl.Cli.Tests.Kms;

/// <summary><c>privateml kms serve|rotate|retire|epochs</c>.</summary>
public sealed class KmsCommandsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pml-cli-kms-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task RotateRetireEpochs_ManageTheEpochsFile()
    {
        var state = Path.Combine(_directory, "state");
        KmsRootKeys.OpenOrCreate(state, RandomNumberGenerator.Create()).Dispose();

        var rotated = await RunAsync(CancellationToken.None, "kms", "rotate", "--state", state);
        Assert.Equal(0, rotated.Code);
        Assert.Contains("key epoch 2 is current", rotated.Output, StringComparison.Ordinal);

        var retireCurrent = await RunAsync(CancellationToken.None, "kms", "retire", "2", "--state", state);
        Assert.Equal(2, retireCurrent.Code);
        Assert.Contains("current", retireCurrent.Error, StringComparison.Ordinal);

        Assert.Equal(0, (await RunAsync(CancellationToken.None, "kms", "retire", "1", "--state", state)).Code);
        var listed = await RunAsync(CancellationToken.None, "kms", "epochs", "--state", state);
        Assert.Equal(0, listed.Code);
        Assert.Contains("1\tretired", listed.Output, StringComparison.Ordinal);
        Assert.Contains("2\tcurrent", listed.Output, StringComparison.Ordinal);
        Assert.True(new KeyEpochStore(state, TimeProvider.System).Current.Find(1)!.IsRetired);
    }

    [Fact]
    public async Task Rotate_WithoutRootKeys_IsAUsageError()
    {
        var (code, _, error) = await RunAsync(CancellationToken.None, "kms", "rotate", "--state", Path.Combine(_directory, "empty"));
        Assert.Equal(2, code);
        Assert.Contains("holds no KMS root keys", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_RejectsAMalformedPolicy()
    {
        var policy = Path.Combine(_directory, "policy.json");
        await File.WriteAllTextAsync(policy, "{\"composeHashes\":[\"00\"]}", TestContext.Current.CancellationToken);
        var (code, _, error) = await RunAsync(CancellationToken.None, "kms", "serve", "--simulate", "--simulator", Path.Combine(_directory, "sim"),
            "--state", Path.Combine(_directory, "state"), "--policy", policy, "--listen", "https://127.0.0.1:0");
        Assert.Equal(2, code);
        Assert.Contains("composeHashes", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeSimulate_SaysSimulated_AnswersGetMeta_UntilCancelled()
    {
        using var stop = new CancellationTokenSource();
        var output = new StringWriter();
        var error = new StringWriter();
        var state = Path.Combine(_directory, "state");
        var running = Program.BuildRoot()
            .Parse(["kms", "serve", "--simulate", "--simulator", Path.Combine(_directory, "sim"), "--state", state, "--listen", "https://127.0.0.1:0"])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, stop.Token);
        string? url = null;
        for (var attempt = 0; attempt < 600 && url is null; attempt++)
        {
            Assert.False(running.IsCompleted, $"the KMS stopped: {error}");
            url = output.ToString().Split('\n').FirstOrDefault(l => l.StartsWith("privateml kms serving", StringComparison.Ordinal))?.Split(" on ")[1].Split(',')[0].Trim();
            if (url is null)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }
        }

        Assert.NotNull(url);
        Assert.Contains("SIMULATED", error.ToString(), StringComparison.Ordinal);
        using (var client = new KmsClient(new Uri(url)))
        using (var meta = await client.CallAsync("GetMeta", null, TestContext.Current.CancellationToken))
        {
            using var roots = KmsRootKeys.Open(state);
            Assert.Equal(Convert.ToHexStringLower(roots.K256PublicKey), meta.RootElement.GetProperty("k256_pubkey").GetString());
            Assert.True(meta.RootElement.GetProperty("is_dev").GetBoolean());
        }

        await stop.CancelAsync();
        Assert.Equal(0, await running);
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await Program.BuildRoot().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
        return (code, output.ToString(), error.ToString());
    }
}
