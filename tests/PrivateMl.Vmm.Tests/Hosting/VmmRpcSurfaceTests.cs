using System.Text;
using System.Text.Json;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.Hosting;

/// <summary>dstack-vmm's HTTP conventions: <c>POST /prpc/&lt;Method&gt;?json</c>, optional <c>Teepod.</c> prefix, GET with a query, Empty as <c>null</c>, errors as 400 <c>{"error": …}</c>.</summary>
public sealed class VmmRpcSurfaceTests
{
    [Fact]
    public async Task Speaks_DstacksJsonConventions()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        using var http = new HttpClient { BaseAddress = new Uri(vmm.Url) };

        var version = await Post(http, "/prpc/Version?json", "", ct);
        var images = await Post(http, "/prpc/Teepod.ListImages?json", "", ct);
        var created = await Post(http, "/prpc/CreateVm?json", JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["name"] = "rpc",
            ["image"] = "dev",
            ["compose_file"] = VmmSandbox.Compose(),
            ["vcpu"] = 1,
            ["memory"] = "512",
            ["disk_size"] = 1,
            ["no_tee"] = true,
            ["stopped"] = true,
        }), ct);
        var id = JsonDocument.Parse(created.Body).RootElement.GetProperty("id").GetString()!;
        using var info = await http.GetAsync($"/prpc/GetInfo?json&id={id}", ct);
        var missing = await Post(http, "/prpc/GetInfo?json", "{\"id\":\"00000000-0000-0000-0000-000000000000\"}", ct);
        var hash = await Post(http, "/prpc/GetComposeHash?json", JsonSerializer.Serialize(new { compose_file = VmmSandbox.Compose() }), ct);
        var reload = await Post(http, "/prpc/ReloadVms?json", "", ct);
        var update = await Post(http, "/prpc/UpdateVm?json", $"{{\"id\":\"{id}\",\"vcpu\":\"2\",\"update_kms_urls\":true,\"kms_urls\":[\"https://kms.example\"]}}", ct);
        var emptyResize = await Post(http, "/prpc/ResizeVm?json", $"{{\"id\":\"{id}\"}}", ct);
        var manifest = vmm.Manager.WorkDir(id).ReadManifest();
        var removed = await Post(http, "/prpc/RemoveVm?json", $"{{\"id\":\"{id}\"}}", ct);
        var bad = await Post(http, "/prpc/CreateVm?json", "{\"name\":\"x\",\"image\":\"nope\"}", ct);
        var unknown = await Post(http, "/prpc/NoSuchMethod?json", "", ct);

        Assert.Equal(200, version.Status);
        Assert.Equal("0.5.5", JsonDocument.Parse(version.Body).RootElement.GetProperty("version").GetString());
        var image = JsonDocument.Parse(images.Body).RootElement.GetProperty("images")[0];
        Assert.Equal("dev", image.GetProperty("name").GetString());
        Assert.Equal("0.5.5", image.GetProperty("version").GetString());
        Assert.True(image.GetProperty("is_dev").GetBoolean());
        Assert.Equal("bzImage", JsonDocument.Parse(image.GetProperty("description").GetString()!).RootElement.GetProperty("kernel").GetString());
        Assert.Equal(200, (int)info.StatusCode);
        var vm = JsonDocument.Parse(await info.Content.ReadAsStringAsync(ct)).RootElement;
        Assert.True(vm.GetProperty("found").GetBoolean());
        Assert.Equal("stopped", vm.GetProperty("info").GetProperty("status").GetString());
        Assert.Equal(512, vm.GetProperty("info").GetProperty("configuration").GetProperty("memory").GetInt32());
        Assert.Equal("{\"found\":false}", missing.Body);
        Assert.Equal(VmmHost.ComposeHashHex(Encoding.UTF8.GetBytes(VmmSandbox.Compose())), JsonDocument.Parse(hash.Body).RootElement.GetProperty("hash").GetString());
        Assert.Equal("{\"loaded\":1,\"updated\":0,\"removed\":0}", reload.Body);
        Assert.Equal((200, "{\"id\":\"\"}"), (update.Status, update.Body));
        Assert.Equal((2, "https://kms.example"), (manifest.Vcpu, manifest.KmsUrls.Single()));
        Assert.Equal(400, emptyResize.Status);
        Assert.Contains("no updates", emptyResize.Body, StringComparison.Ordinal);
        Assert.Equal((200, "null"), (removed.Status, removed.Body));
        Assert.Equal(400, bad.Status);
        Assert.StartsWith("{\n  \"error\": ", bad.Body, StringComparison.Ordinal);
        Assert.Contains("no image 'nope'", JsonDocument.Parse(bad.Body).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(400, unknown.Status);
        Assert.Empty(vmm.Box.RunEntries());
    }

    [Fact]
    public async Task HostApi_RecordsTheInstanceInfoTheGuestReports()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct);
        using var http = new HttpClient { BaseAddress = new Uri(vmm.Url) };
        var id = await vmm.Manager.CreateAsync(new VmConfiguration { Name = "g", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true }, ct);
        var payload = "{\"instance_id_seed\":\"00\",\"instance_id\":\"" + new string('1', 40) + "\",\"app_id\":\"" + new string('2', 40) + "\"}";

        var notify = await Post(http, $"/vm/{id}/api/Notify", JsonSerializer.Serialize(new { @event = "instance.info", payload }), ct);
        var hostInfo = await Post(http, $"/vm/{id}/api/Info", "", ct);

        Assert.Equal((200, "null"), (notify.Status, notify.Body));
        Assert.Equal(payload, File.ReadAllText(vmm.Manager.WorkDir(id).SharedFile(".instance_info")));
        Assert.Equal(new string('1', 40), vmm.Manager.Info(vmm.Manager.WorkDir(id)).InstanceId);
        Assert.Equal("g", JsonDocument.Parse(hostInfo.Body).RootElement.GetProperty("name").GetString());
    }

    private static async Task<(int Status, string Body)> Post(HttpClient http, string path, string body, CancellationToken ct)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync(path, content, ct);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(ct));
    }
}
