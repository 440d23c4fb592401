using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using static PrivateMl.Agent.Tests.AgentFixture;

namespace PrivateMl.Agent.Tests.Hosting;

/// <summary>Bad requests get a 4xx JSON error and change nothing (no event measured, no quote taken).</summary>
public sealed class MalformedRequestTests : IAsyncLifetime
{
    private AgentFixture _agent = null!;

    private CountingTdxDevice _device => _agent.Device;

    public async ValueTask InitializeAsync() => _agent = await StartAsync();

    public async ValueTask DisposeAsync() => await _agent.DisposeAsync();

    public static TheoryData<string, string, int> BadRequests => new()
    {
        { "/GetQuote", "{\"report_data\":\"zz\"}", 400 },
        { "/GetQuote", "{\"report_data\":\"abc\"}", 400 },
        { "/GetQuote", $"{{\"report_data\":\"{new string('a', 130)}\"}}", 400 },
        { "/GetQuote", "{\"report_data\":", 400 },
        { "/GetQuote", "[1,2,3]", 400 },
        { "/GetQuote", "\"just a string\"", 400 },
        { "/GetQuote", "{\"report_data\":12}", 400 },
        { "/GetQuote", new string('[', 100) + new string(']', 100), 400 },
        { "/GetKey", "{\"path\":\"a\",\"algorithm\":\"rsa\"}", 400 },
        { "/GetKey", "{\"path\":[\"a\"]}", 400 },
        { "/GetTlsKey", "{\"usage_ra_tls\":\"yes\"}", 400 },
        { "/GetTlsKey", "{\"not_before\":20,\"not_after\":10}", 400 },
        { "/GetTlsKey", "{\"alt_names\":[\"bad name!\"]}", 400 },
        { "/EmitEvent", "{\"event\":\"\",\"payload\":\"00\"}", 400 },
        { "/EmitEvent", "{\"event\":\"x\",\"payload\":\"0g\"}", 400 },
        { "/EmitEvent", $"{{\"event\":\"{new string('e', 300)}\",\"payload\":\"\"}}", 400 },
        { "/Sign", "{\"algorithm\":\"secp256k1_prehashed\",\"data\":\"00\"}", 400 },
        { "/Sign", "{\"algorithm\":\"md5\",\"data\":\"00\"}", 400 },
        { "/Verify", "{\"algorithm\":\"nope\"}", 400 },
        { "/NoSuchMethod", "{}", 404 },
        { "/DstackGuest.GetQuote", "{}", 404 },
        { "/prpc/Tappd.TdxQuote", "{}", 404 },
        { "/GetQuote/extra", "{}", 404 },
        { "/", "{}", 404 },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Rejects_WithJsonError_AndChangesNothing(string path, string body, int expectedStatus)
    {
        await _agent.App.Services.GetService<Runtime.AgentRuntime>()!.EnsureBootedAsync();
        var eventsBefore = EventCount();
        var quotesBefore = _device.QuoteCount;

        var (status, error) = await _agent.PostAsync(path, body);

        Assert.Equal(expectedStatus, status);
        Assert.False(string.IsNullOrEmpty(error.GetProperty("error").GetString()));
        Assert.Equal(eventsBefore, EventCount());
        Assert.Equal(quotesBefore, _device.QuoteCount);
    }

    [Theory]
    [InlineData("/prpc/Tappd.TdxQuote", "{\"report_data\":\"00\",\"hash_algorithm\":\"md5\"}", 400)]
    [InlineData("/prpc/Tappd.TdxQuote", "{\"report_data\":\"00\",\"hash_algorithm\":\"raw\"}", 400)]
    [InlineData("/prpc/Tappd.Nope", "{}", 404)]
    [InlineData("/GetQuote", "{}", 404)]
    [InlineData("/prpc/Tappd.DeriveKey", "{\"alt_names\":\"x\"}", 400)]
    public async Task Tappd_Rejects(string path, string body, int expectedStatus)
    {
        var quotesBefore = _device.QuoteCount;
        var (status, error) = await PostAsync(_agent.Tappd, path, body);
        Assert.Equal(expectedStatus, status);
        Assert.True(error.TryGetProperty("error", out _));
        Assert.Equal(quotesBefore, _device.QuoteCount);
    }

    // Well past the limit the body outgrows the socket buffers: the 413 must still arrive, not a reset mid-send.
    [Theory]
    [InlineData(2)]
    [InlineData(768 * 1024)]
    public async Task Rejects_BodyOverTheLimit_With413(int excess)
    {
        var huge = "{\"event\":\"big\",\"payload\":\"" + new string('0', _agent.Options.MaxRequestBodyBytes + excess) + "\"}";
        var before = EventCount();
        var (status, error) = await _agent.PostAsync("/EmitEvent", huge);
        Assert.Equal(413, status);
        Assert.Contains("limit", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, EventCount());
    }

    [Fact]
    public async Task Rejects_ChunkedBodyOverTheLimit_With413()
    {
        // No Content-Length: the limit must hold while reading.
        var payload = Encoding.UTF8.GetBytes("{\"data\":\"" + new string('0', _agent.Options.MaxRequestBodyBytes + 2) + "\",\"algorithm\":\"ed25519\"}");
        using var content = new StreamContent(new MemoryStream(payload));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/Sign") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await _agent.Dstack.SendAsync(request, TestContext.Current.CancellationToken);
        var (status, _) = await ReadAsync(response);
        Assert.Equal(413, status);
    }

    [Fact]
    public async Task Rejects_OtherHttpMethods_With405()
    {
        using var response = await _agent.Dstack.PutAsync("/GetQuote", new StringContent("{}"), TestContext.Current.CancellationToken);
        var (status, _) = await ReadAsync(response);
        Assert.Equal(405, status);
    }

    [Fact]
    public async Task Rejects_Protobuf_With415()
    {
        using var content = new ByteArrayContent([0x0a, 0x01, 0x00]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-protobuf");
        using var response = await _agent.Dstack.PostAsync("/GetQuote", content, TestContext.Current.CancellationToken);
        var (status, _) = await ReadAsync(response);
        Assert.Equal(415, status);
    }

    [Fact]
    public async Task EmptyBody_MeansDefaults()
    {
        using var response = await _agent.Dstack.PostAsync("/GetQuote", new ByteArrayContent([]), TestContext.Current.CancellationToken);
        var (status, body) = await ReadAsync(response);
        Assert.Equal(200, status);
        Assert.Equal(new string('0', 128), body.GetProperty("report_data").GetString());
    }

    [Fact]
    public async Task GarbageOnTheSocket_DoesNotStopTheAgent()
    {
        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(_agent.Options.SocketPath!), TestContext.Current.CancellationToken);
            await socket.SendAsync("NOT HTTP AT ALL\r\n\r\n\0\0\0"u8.ToArray(), TestContext.Current.CancellationToken);
            var buffer = new byte[1024];
            _ = await socket.ReceiveAsync(buffer, TestContext.Current.CancellationToken);
        }

        var (status, _) = await _agent.PostAsync("/Version", "{}");
        Assert.Equal(200, status);
    }

    private int EventCount() => _agent.App.Services.GetService<Tee.EventLog.RuntimeEventLog>()!.GetEvents().Count;
}

internal static class ServiceProviderExtensions
{
    public static T? GetService<T>(this IServiceProvider services) => (T?)services.GetService(typeof(T));
}
