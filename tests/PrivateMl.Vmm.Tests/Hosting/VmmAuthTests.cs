using System.Net;
using System.Net.Http.Headers;
using System.Text;
using PrivateMl.Vmm.Hosting;
using PrivateMl.Vmm.Tests.Support;

namespace PrivateMl.Vmm.Tests.Hosting;

/// <summary>dstack-vmm's <c>[auth]</c> on the service, and the refusal to listen beyond loopback without it.</summary>
public sealed class VmmAuthTests
{
    private const string Token = "s3cret-token-1";

    [Fact]
    public async Task WithAuth_EveryRouteNeedsAToken_InAnyOfDstacksForms()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var vmm = await RunningVmm.StartAsync(ct, o => o with { Auth = new VmmAuthOptions { Enabled = true, Tokens = ["other-token", Token] } });
        using var http = new HttpClient();
        var id = await vmm.Manager.CreateAsync(new VmConfiguration { Name = "a", Image = "dev", ComposeFile = VmmSandbox.Compose(), NoTee = true, Stopped = true }, ct);

        async Task<HttpStatusCode> Post(string path, Action<HttpRequestMessage>? setup = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, vmm.Url + path) { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
            setup?.Invoke(request);
            using var response = await http.SendAsync(request, ct);
            return response.StatusCode;
        }

        async Task<HttpStatusCode> Get(string path)
        {
            using var response = await http.GetAsync(vmm.Url + path, ct);
            return response.StatusCode;
        }

        string Basic(string user, string password) => Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));

        Assert.Equal(HttpStatusCode.Unauthorized, await Post("/prpc/Status?json"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "wrong")));
        Assert.Equal(HttpStatusCode.Unauthorized, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token[..^1])));
        Assert.Equal(HttpStatusCode.Unauthorized, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token + "x")));
        Assert.Equal(HttpStatusCode.Unauthorized, await Post($"/prpc/Status?json&token={Token}"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get($"/logs?id={id}"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/"));
        Assert.Equal(HttpStatusCode.OK, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token)));
        Assert.Equal(HttpStatusCode.OK, await Post("/prpc/Status?json", r => r.Headers.Add("X-Admin-Token", Token)));
        Assert.Equal(HttpStatusCode.OK, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Basic", Basic("admin", Token))));
        Assert.Equal(HttpStatusCode.OK, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Basic", Basic(Token, ""))));
        Assert.Equal(HttpStatusCode.Unauthorized, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Basic", Basic("admin", "wrong"))));
        Assert.Equal(HttpStatusCode.Unauthorized, await Post("/prpc/Status?json", r => r.Headers.Authorization = new AuthenticationHeaderValue("Basic", "%%%")));
        Assert.Equal(HttpStatusCode.OK, await Get($"/logs?id={id}&token={Token}"));

        // The guests' host API stays reachable over loopback (dstack serves it on vsock, outside [auth]).
        Assert.Equal(HttpStatusCode.OK, await Post($"/vm/{id}/api/Info"));
        Assert.Equal(HttpStatusCode.OK, await Post($"/vm/{id}/api/Notify", r => r.Content = new StringContent("{\"event\":\"boot.progress\",\"payload\":\"done\"}", Encoding.UTF8, "application/json")));
        Assert.Equal("done", vmm.Manager.Info(vmm.Manager.WorkDir(id)).BootProgress);

        using var refused = await http.PostAsync(vmm.Url + "/prpc/Status?json", new StringContent("{}"), ct);
        Assert.Equal("Bearer realm=\"dstack-vmm API\"", refused.Headers.WwwAuthenticate.ToString());
        Assert.Contains("\"error\"", await refused.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_AcceptsExactlyTheConfiguredTokens()
    {
        var auth = new VmmAuth(new VmmAuthOptions { Enabled = true, Tokens = ["", "alpha", "béta"] });

        Assert.Equal(2, auth.TokenCount);
        Assert.True(auth.Verify("alpha"));
        Assert.True(auth.Verify("béta"));
        Assert.False(auth.Verify(""));
        Assert.False(auth.Verify(null));
        Assert.False(auth.Verify("alph"));
        Assert.False(auth.Verify("alphaa"));
        Assert.False(auth.Verify("ALPHA"));
    }

    [Fact]
    public void AuthWithoutTokens_IsRefused()
    {
        var e = Assert.Throws<VmmException>(() => new VmmAuth(new VmmAuthOptions { Enabled = true, Tokens = [""] }));
        Assert.Equal(VmmErrorCode.InvalidArgument, e.Code);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", true)]
    [InlineData("http://localhost:8080", true)]
    [InlineData("http://[::1]:8080", true)]
    [InlineData("http://127.8.9.10:1", true)]
    [InlineData("http://unix:/run/vmm.sock", true)]
    [InlineData("http://0.0.0.0:8080", false)]
    [InlineData("http://*:8080", false)]
    [InlineData("http://+:8080", false)]
    [InlineData("http://[::]:8080", false)]
    [InlineData("http://10.1.2.3:8080", false)]
    [InlineData("http://vmm.example:8080", false)]
    [InlineData("", false)]
    public void LoopbackAddresses_AreRecognised(string address, bool loopback) =>
        Assert.Equal(loopback, VmmAuth.IsLoopbackAddress(address));

    [Fact]
    public void WithoutAuth_APublicListener_IsRefused_UnlessAllowed()
    {
        using var box = new VmmSandbox();
        var open = box.Options with { Address = "http://0.0.0.0:0" };

        var e = Assert.Throws<VmmException>(() => VmmHost.Build(open));
        using var allowed = box.Manager();
        using var app = VmmHost.Build(open with { Auth = new VmmAuthOptions { AllowPublicWithoutAuth = true } }, allowed);
        using var withAuth = VmmHost.Build(open with { Auth = new VmmAuthOptions { Enabled = true, Tokens = [Token] } }, allowed);

        Assert.Equal(VmmErrorCode.InvalidArgument, e.Code);
        Assert.Contains("without auth", e.Message, StringComparison.Ordinal);
        Assert.NotNull(app);
        Assert.NotNull(withAuth);
        Assert.StartsWith("auth: disabled — listening on loopback only", VmmAuth.Describe(box.Options), StringComparison.Ordinal);
        Assert.StartsWith("WARNING", VmmAuth.Describe(open with { Auth = new VmmAuthOptions { AllowPublicWithoutAuth = true } }), StringComparison.Ordinal);
        Assert.StartsWith("auth: enabled (1 token)", VmmAuth.Describe(open with { Auth = new VmmAuthOptions { Enabled = true, Tokens = [Token] } }), StringComparison.Ordinal);
    }

    [Fact]
    public void TheConfigFile_TakesDstacksAuthSection_AndRefusesTypos()
    {
        using var box = new VmmSandbox();
        var good = Path.Combine(box.Root, "good.json");
        var typo = Path.Combine(box.Root, "typo.json");
        File.WriteAllText(good, """{"address": "http://0.0.0.0:8080", "auth": {"enabled": true, "tokens": ["t1", "t2"]}, "shutdown_timeout_secs": 90}""");
        File.WriteAllText(typo, """{"auth": {"enable": true}}""");

        var options = VmmOptions.Load(good);

        Assert.True(options.Auth.Enabled);
        Assert.Equal(["t1", "t2"], options.Auth.Tokens);
        Assert.Equal(90, options.ShutdownTimeoutSeconds);
        Assert.True(options.QmpSocket);
        Assert.Equal(VmmErrorCode.InvalidArgument, Assert.Throws<VmmException>(() => VmmOptions.Load(typo)).Code);
    }
}
