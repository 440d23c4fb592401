using System.Security.Cryptography;
using System.Text.Json;

namespace PrivateMl.Vmm.Tests.DevVm;

/// <summary>
/// The development VM really boots (issue 11, first acceptance item): the image built by build-dev runs under QEMU
/// (TCG here), and from the host the real CLI verifies the node through the forwarded port, the compose hash in the
/// VM's event log is the SHA-256 of the app-compose.json the host wrote, a chat is signed by the attested key, and
/// the console log shows the guest's boot. Stopping leaves no qemu running.
/// </summary>
public sealed class DevVmBootTests(DevVmFixture vm) : IClassFixture<DevVmFixture>
{
    private static readonly TimeSpan CliTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Boots_verifies_chats_logs_and_stops()
    {
        var ct = TestContext.Current.CancellationToken;
        await vm.EnsureBootedAsync(ct);
        TestContext.Current.TestOutputHelper?.WriteLine($"dev VM: QEMU start → first answer on {vm.BaseUrl} in {vm.BootToAnswer.TotalSeconds:F1} s");
        var url = vm.BaseUrl.ToString().TrimEnd('/');
        var pccs = url + "/pccs";
        var composeHash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(vm.ComposePath, ct)));

        // verify from the host: the real CLI, fresh nonce, simulated collateral from the guest's PCCS routes.
        var (verifyExit, verifyOutput) = await DevVmEnvironment.RunAsync(
            vm.HostCli, ["verify", url, "--allow-simulated", "--pccs", pccs, "--compose", vm.ComposePath, "--json"], CliTimeout, ct);
        Assert.True(verifyExit == 0, $"privateml verify exited {verifyExit}:\n{verifyOutput}\nconsole:\n{vm.ConsoleTail()}");
        using (var verdict = JsonDocument.Parse(verifyOutput[verifyOutput.IndexOf('{', StringComparison.Ordinal)..]))
        {
            Assert.True(verdict.RootElement.GetProperty("trusted").GetBoolean());
            Assert.True(verdict.RootElement.GetProperty("simulated").GetBoolean());
            Assert.Equal(composeHash, verdict.RootElement.GetProperty("app").GetProperty("compose_hash").GetString());
        }

        // A chat through the forwarded port, its answer's signature checked against the attested key.
        var (chatExit, chatOutput) = await DevVmEnvironment.RunAsync(
            vm.HostCli, ["chat", url, "Say hello", "--model", "privateml-demo", "--allow-simulated", "--pccs", pccs, "--compose", vm.ComposePath], CliTimeout, ct);
        Assert.True(chatExit == 0, $"privateml chat exited {chatExit}:\n{chatOutput}");
        Assert.Contains("VERIFIED: this answer was signed by the attested key", chatOutput, StringComparison.Ordinal);

        // The console shows the guest's boot, including the compose hash it measured into RTMR3.
        var console = await File.ReadAllTextAsync(vm.SerialLog, ct);
        Assert.Contains("privateml-dev: init started", console, StringComparison.Ordinal);
        Assert.Contains($"RTMR3 event compose-hash: {composeHash}", console, StringComparison.Ordinal);
        Assert.Contains("privateml-dev: ready: gateway on 0.0.0.0:8000", console, StringComparison.Ordinal);

        // Stopping leaves nothing running.
        var qemu = vm.Qemu!;
        await vm.StopAsync();
        Assert.True(qemu.HasExited);
        await Assert.ThrowsAnyAsync<HttpRequestException>(async () =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            await http.GetAsync(new Uri(vm.BaseUrl, "/health"), ct);
        });
    }
}
