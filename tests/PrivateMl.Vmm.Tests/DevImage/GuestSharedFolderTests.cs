using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevImage;

public sealed class GuestSharedFolderTests : IDisposable
{
    private const string Compose = "{\n    \"manifest_version\": 2,\n    \"name\": \"app\",\n    \"runner\": \"docker-compose\",\n    \"allowed_envs\": [\"FOO\"]\n}";

    private readonly string _root = Directory.CreateTempSubdirectory("privateml-shared-").FullName;

    private string Shared => Path.Combine(_root, "shared");

    private string Copy => Path.Combine(_root, "copy");

    public GuestSharedFolderTests() => Directory.CreateDirectory(Shared);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string name, string text) => File.WriteAllText(Path.Combine(Shared, name), text);

    [Fact]
    public void Reads_the_files_the_vmm_writes_and_keeps_the_compose_bytes_exact()
    {
        Write("app-compose.json", Compose);
        Write(".sys-config.json", "{\"kms_urls\":[\"http://10.0.2.2:8000\"],\"vm_config\":\"{\\\"cpu_count\\\":2}\"}");
        var appId = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Compose))[..20]);
        Write(".instance_info", $"{{\"app_id\":\"{appId}\",\"instance_id_seed\":\"{new string('a', 40)}\"}}");
        File.WriteAllBytes(Path.Combine(Shared, ".encrypted-env"), [1, 2, 3]);

        var files = GuestSharedFolder.CopyAndRead(Shared, Copy);

        Assert.Equal(Encoding.UTF8.GetBytes(Compose), files.AppCompose);
        Assert.Equal(Encoding.UTF8.GetBytes(Compose), File.ReadAllBytes(Path.Combine(Copy, "app-compose.json")));
        Assert.Equal(appId, Convert.ToHexStringLower(files.AppId));
        Assert.Equal("app", files.AppName);
        Assert.Equal(["FOO"], files.AllowedEnvs);
        Assert.Equal("{\"cpu_count\":2}", files.VmConfig);
        Assert.Equal(["http://10.0.2.2:8000"], files.KmsUrls);
        Assert.Equal(Convert.FromHexString(new string('a', 40)), files.InstanceIdSeed);
        Assert.Equal([1, 2, 3], files.EncryptedEnv);
        Assert.False(files.KmsEnabled);
    }

    [Fact]
    public void Refuses_an_app_id_other_than_the_compose_hash_without_kms()
    {
        Write("app-compose.json", Compose);
        Write(".instance_info", $"{{\"app_id\":\"{new string('1', 40)}\"}}");
        var e = Assert.Throws<GuestBootException>(() => GuestSharedFolder.CopyAndRead(Shared, Copy));
        Assert.Contains("App upgrade is not supported without KMS", e.Message, StringComparison.Ordinal);

        // A KMS app keeps the app id it was deployed as through a compose upgrade (update-env rewrites the compose).
        Write("app-compose.json", "{\"manifest_version\":2,\"name\":\"app\",\"runner\":\"bash\",\"kms_enabled\":true}");
        var files = GuestSharedFolder.CopyAndRead(Shared, Copy);
        Assert.True(files.KmsEnabled);
        Assert.Equal(new string('1', 40), Convert.ToHexStringLower(files.AppId));
        Assert.NotEqual(files.ComposeHash[..20], files.AppId);
    }

    [Theory]
    [InlineData("app-compose.json", "[1,2]")]
    [InlineData("app-compose.json", "{\"name\":")]
    [InlineData("app-compose.json", "{\"name\":\"no manifest_version\",\"runner\":\"bash\"}")]
    [InlineData(".sys-config.json", "\"x\"")]
    [InlineData(".instance_info", "{\"app_id\":\"zz\"}")]
    [InlineData(".instance_info", "{\"instance_id_seed\":42}")]
    public void Malformed_files_stop_the_boot_with_a_typed_error(string name, string content)
    {
        Write("app-compose.json", Compose);
        Write(name, content);
        var e = Assert.Throws<GuestBootException>(() => GuestSharedFolder.CopyAndRead(Shared, Copy));
        Assert.Contains(name, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_compose_an_oversized_file_or_a_link_stops_the_boot()
    {
        Assert.Contains("app-compose.json", Assert.Throws<GuestBootException>(() => GuestSharedFolder.CopyAndRead(Shared, Copy)).Message, StringComparison.Ordinal);

        Write("app-compose.json", Compose);
        File.WriteAllBytes(Path.Combine(Shared, ".encrypted-env"), new byte[(256 * 1024) + 1]);
        Assert.Contains("limit", Assert.Throws<GuestBootException>(() => GuestSharedFolder.CopyAndRead(Shared, Copy)).Message, StringComparison.Ordinal);

        File.Delete(Path.Combine(Shared, ".encrypted-env"));
        File.WriteAllText(Path.Combine(_root, "secret"), "{}");
        File.CreateSymbolicLink(Path.Combine(Shared, ".sys-config.json"), Path.Combine(_root, "secret"));
        Assert.Contains("link", Assert.Throws<GuestBootException>(() => GuestSharedFolder.CopyAndRead(Shared, Copy)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Metadata_has_the_product_image_layout_marked_dev()
    {
        using var metadata = JsonDocument.Parse(DevImageBuilder.Metadata("0.5.5"));
        var root = metadata.RootElement;
        Assert.Equal("bzImage", root.GetProperty("kernel").GetString());
        Assert.Equal("initramfs.cpio", root.GetProperty("initrd").GetString());
        Assert.Equal("0.5.5", root.GetProperty("version").GetString());
        Assert.True(root.GetProperty("is_dev").GetBoolean());
        Assert.True(root.GetProperty("shared_ro").GetBoolean());
        var cmdline = root.GetProperty("cmdline").GetString()!;
        Assert.Contains("console=ttyS0", cmdline, StringComparison.Ordinal);
        Assert.Contains("panic=1", cmdline, StringComparison.Ordinal);
        Assert.False(root.TryGetProperty("bios", out _));
    }
}
