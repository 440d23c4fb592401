using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace PrivateMl.Vmm.Tests.DevVm;

/// <summary>
/// The development VM really boots (issue 11, first acceptance item), driven through the real CLI and service:
/// <c>vmm image build-dev</c>'s image, <c>vmm compose</c>, <c>vmm deploy --no-tee</c> with a forwarded port (QEMU,
/// TCG here); from the host <c>privateml verify</c> passes and the compose hash in the VM's event log is the one
/// <c>vmm compose</c> printed; a chat through the port is signed by the attested key; <c>vmm logs</c> shows the
/// guest console; an <c>update-env</c> reaches the guest after stop + start; stop and remove leave no qemu running.
/// Keys and env go the whole dstack way: the host runs <c>privateml kms serve --simulate</c> trusting the image's
/// SIMULATED platform, <c>deploy --env-file --kms-url</c> encrypts to that KMS's env key (signer trusted with
/// <c>kms add</c>), and the guest takes its app keys from the KMS over RA-TLS, opens the env (allowed_envs applied) and
/// gives the gateway the bearer token it carries: token A before update-env, token B after.
/// </summary>
public sealed partial class DevVmBootTests(DevVmFixture host) : IClassFixture<DevVmFixture>
{
    [Fact]
    public async Task Deploy_verify_chat_logs_update_env_restart_stop_remove()
    {
        var ct = TestContext.Current.CancellationToken;
        await host.EnsureStartedAsync(ct);
        var dir = Path.Combine(host.WorkDirectory, "app");
        Directory.CreateDirectory(dir);
        var composeYaml = Path.Combine(dir, "docker-compose.yaml");
        var env1 = Path.Combine(dir, "env1");
        var env2 = Path.Combine(dir, "env2");
        var compose = Path.Combine(dir, "app-compose.json");
        var tokenA = "token-a-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var tokenB = "token-b-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var notAllowed = "not-allowed-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        await File.WriteAllTextAsync(composeYaml, "services: {}\n", ct);
        await File.WriteAllTextAsync(env1, $"{ApiKey}={tokenA}\nGREETING=hello\n", ct);
        await File.WriteAllTextAsync(env2, $"{ApiKey}={tokenB}\nGREETING=bonjour\nNOT_IN_ALLOWED_ENVS={notAllowed}\n", ct);

        // A KMS app: allowed_envs are env1's names, so env2's extra variable is dropped in the guest.
        var composed = await host.VmmAsync(ct, "compose", "--name", "devvm-test", "--docker-compose", composeYaml, "--kms", "--env-file", env1, "--output", compose);
        var composeHash = ComposeHashLine().Match(composed).Groups[1].Value;
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(compose, ct))), composeHash);

        // deploy --no-tee with a forwarded port and an env encrypted to the host KMS's key (its signer trusted by kms add).
        var port = DevVmEnvironment.FreePort();
        var started = Stopwatch.StartNew();
        var deployed = await host.VmmAsync(
            ct, "deploy", "--name", "devvm-test", "--image", DevVmFixture.ImageName, "--compose", compose, "--no-tee", "--vcpu", "2", "--memory", "2G",
            "--port", $"tcp:127.0.0.1:{port}:{PrivateMl.Vmm.DevImage.DevGuestInit.GuestPort}", "--env-file", env1, "--kms-url", host.KmsUrl);
        var id = CreatedLine().Match(deployed).Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(id), deployed);
        var workDir = Path.Combine(host.RunPath, id);
        var url = $"http://127.0.0.1:{port}";
        await WaitForGuestAsync(url, workDir, ct);
        TestContext.Current.TestOutputHelper?.WriteLine($"dev VM: deploy → first answer through the forwarded port in {started.Elapsed.TotalSeconds:F1} s");

        // The guest took its keys from the host KMS over RA-TLS and opened the env: the gateway wants token A.
        Assert.Equal(HttpStatusCode.Unauthorized, await ChatStatusAsync(url, null, ct));
        Assert.Equal(HttpStatusCode.Unauthorized, await ChatStatusAsync(url, tokenB, ct));
        Assert.Equal(HttpStatusCode.OK, await ChatStatusAsync(url, tokenA, ct));

        // verify from the host: fresh nonce, simulated collateral from the guest's PCCS routes, the compose pinned.
        var (verifyExit, verifyOutput) = await host.CliAsync(["verify", url, "--allow-simulated", "--compose", compose, "--json", "--token", tokenA], ct);
        Assert.True(verifyExit == 0, $"privateml verify exited {verifyExit}:\n{verifyOutput}");
        using (var verdict = JsonDocument.Parse(verifyOutput[verifyOutput.IndexOf('{', StringComparison.Ordinal)..]))
        {
            Assert.True(verdict.RootElement.GetProperty("trusted").GetBoolean());
            Assert.True(verdict.RootElement.GetProperty("simulated").GetBoolean());
            Assert.Equal(composeHash, verdict.RootElement.GetProperty("app").GetProperty("compose_hash").GetString());
        }

        // A chat through the forwarded port, its answer's signature checked against the attested key.
        var (chatExit, chatOutput) = await host.CliAsync(["chat", url, "Say hello", "--model", "privateml-demo", "--allow-simulated", "--pccs", url + "/pccs", "--compose", compose, "--token", tokenA], ct);
        Assert.True(chatExit == 0, $"privateml chat exited {chatExit}:\n{chatOutput}");
        Assert.Contains("VERIFIED: this answer was signed by the attested key", chatOutput, StringComparison.Ordinal);

        // vmm logs shows the guest console: the boot, the measured compose hash and KMS, the env's names — never a value.
        var logs = await host.VmmAsync(ct, "logs", id, "-n", "500");
        TestContext.Current.TestOutputHelper?.WriteLine("guest console (privateml-dev lines):\n" + GuestLines(logs));
        Assert.Contains("privateml-dev: init started", logs, StringComparison.Ordinal);
        Assert.Contains($"RTMR3 event compose-hash: {composeHash}", logs, StringComparison.Ordinal);
        Assert.Contains("RTMR3 event key-provider: {\"name\":\"kms\"", logs, StringComparison.Ordinal);
        Assert.Contains(EnvLine(workDir), logs, StringComparison.Ordinal);
        Assert.True(logs.Contains($"kept by allowed_envs: GREETING, {ApiKey} (values not shown)", StringComparison.Ordinal), GuestLines(logs));
        Assert.DoesNotContain(tokenA, logs, StringComparison.Ordinal);
        Assert.Contains("(SIMULATED)", await File.ReadAllTextAsync(host.KmsLogPath, ct), StringComparison.Ordinal);

        // update-env (token B, plus a name the compose does not allow), then stop + start: the guest opens the new env.
        var before = EnvLine(workDir);
        await host.VmmAsync(ct, "update-env", id, "--env-file", env2, "--kms-url", host.KmsUrl);
        var after = EnvLine(workDir);
        Assert.NotEqual(before, after);
        await host.VmmAsync(ct, "stop", id);
        Assert.Null(DevVmFixture.LivePid(workDir));
        await host.VmmAsync(ct, "start", id);
        await WaitForGuestAsync(url, workDir, ct);
        Assert.Equal(HttpStatusCode.Unauthorized, await ChatStatusAsync(url, tokenA, ct));
        Assert.Equal(HttpStatusCode.OK, await ChatStatusAsync(url, tokenB, ct));
        var logsAfter = await host.VmmAsync(ct, "logs", id, "-n", "500");
        TestContext.Current.TestOutputHelper?.WriteLine("guest console after update-env + restart:\n" + GuestLines(logsAfter));
        Assert.Contains(after, logsAfter, StringComparison.Ordinal);
        Assert.DoesNotContain(tokenB, logsAfter, StringComparison.Ordinal);
        Assert.DoesNotContain(notAllowed, logsAfter, StringComparison.Ordinal);

        // stop + remove leave nothing running and nothing behind.
        var pid = DevVmFixture.LivePid(workDir);
        Assert.NotNull(pid);
        await host.VmmAsync(ct, "stop", id);
        var shutdown = await host.VmmAsync(ct, "logs", id, "-n", "200");
        Assert.True(shutdown.Contains(PrivateMl.Vmm.DevImage.DevGuestInit.PowerButtonLine, StringComparison.Ordinal), "the stop was not graceful:\n" + GuestLines(shutdown));
        Assert.Contains("privateml exited with status 0; powering off", shutdown, StringComparison.Ordinal);
        await host.VmmAsync(ct, "remove", id);
        Assert.False(File.Exists($"/proc/{pid}/cmdline") && File.ReadAllText($"/proc/{pid}/cmdline").Contains("qemu", StringComparison.Ordinal), $"qemu {pid} still runs");
        Assert.False(Directory.Exists(workDir));
        Assert.DoesNotContain(id, await host.VmmAsync(ct, "lsvm"), StringComparison.Ordinal);
        await Assert.ThrowsAnyAsync<HttpRequestException>(async () =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            await http.GetAsync(new Uri(url + "/health"), ct);
        });
    }

    private const string ApiKey = PrivateMl.Vmm.DevImage.DevGuestAgent.ApiTokensVariable;

    /// <summary>The guest's own console lines (init and privateml), for failure messages and the test output.</summary>
    private static string GuestLines(string console) => string.Join('\n', console.Split('\n').Where(l => l.Contains("privateml-dev:", StringComparison.Ordinal)));

    /// <summary>The status of a one-token chat completion through the forwarded port, with <paramref name="token"/> as bearer (or none).</summary>
    private static async Task<HttpStatusCode> ChatStatusAsync(string url, string? token, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(url + "/v1/chat/completions"))
        {
            Content = new StringContent("""{"model":"privateml-demo","messages":[{"role":"user","content":"hi"}],"max_tokens":1}""", System.Text.Encoding.UTF8, "application/json"),
        };
        if (token is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await http.SendAsync(request, ct);
        return response.StatusCode;
    }

    /// <summary>The line the guest prints for the .encrypted-env the host wrote (size and SHA-256 prefix).</summary>
    private static string EnvLine(string workDir)
    {
        var blob = File.ReadAllBytes(Path.Combine(workDir, "shared", ".encrypted-env"));
        return $"encrypted env present ({blob.Length} bytes, sha256 {Convert.ToHexStringLower(SHA256.HashData(blob))[..16]})";
    }

    private static Task WaitForGuestAsync(string url, string workDir, CancellationToken ct) => DevVmFixture.WaitForAsync(
        new Uri(url + "/health"),
        DevVmFixture.BootTimeout,
        () => DevVmFixture.LivePid(workDir) is null && File.Exists(Path.Combine(workDir, "qemu.pid")) ? "qemu exited" : null,
        ct,
        () => Tail(Path.Combine(workDir, "serial.log")));

    private static string Tail(string path)
    {
        try
        {
            var text = File.ReadAllText(path);
            return "console:\n" + (text.Length > 4000 ? text[^4000..] : text);
        }
        catch (IOException)
        {
            return "(no console log)";
        }
    }

    [GeneratedRegex("Compose hash: ([0-9a-f]{64})")]
    private static partial Regex ComposeHashLine();

    [GeneratedRegex("Created VM with ID: ([0-9a-f-]{36})")]
    private static partial Regex CreatedLine();
}
