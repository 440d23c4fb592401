using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Receipts;

/// <summary>
/// With bearer auth on, a signature or receipt is served only to the credential that made the request; any other
/// token gets the same 404 as an unknown id. The store keeps a hash of the credential, never the token.
/// </summary>
public sealed class SignatureOwnershipTests
{
    private const string OtherToken = "other-token-9876543210";

    [Fact]
    public async Task MemoryStore_OtherCredential_Gets404_Owner_Gets200()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.Tokens = [GatewayFixture.Token, OtherToken]);
        await AssertTiedToCredentialAsync(node, node.Client, node.Client.BaseAddress!);
    }

    [Fact]
    public async Task RedisStore_OtherCredential_Gets404_OnAnyInstance_AndTheTokenIsNotStored()
    {
        using var redis = await RedisServer.StartAsync();
        await using var node = await GatewayFixture.StartAsync(o =>
        {
            o.RedisConnection = redis.ConnectionString;
            o.Tokens = [GatewayFixture.Token, OtherToken];
        });
        var (_, secondClient, _) = await node.StartGatewayAsync(o =>
        {
            o.RedisConnection = redis.ConnectionString;
            o.Tokens = [GatewayFixture.Token, OtherToken];
        });

        var id = await AssertTiedToCredentialAsync(node, secondClient, secondClient.BaseAddress!);

        using var raw = StackExchange.Redis.ConnectionMultiplexer.Connect(redis.ConnectionString);
        var stored = (string?)await raw.GetDatabase().StringGetAsync($"privateml:chat:{id}");
        Assert.NotNull(stored);
        Assert.DoesNotContain(GatewayFixture.Token, stored, StringComparison.Ordinal);
        Assert.Contains("\"credential_sha256\":\"" + BearerHash(GatewayFixture.Token) + "\"", stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PublicMode_AnyoneReadsSignatures_AndNoCredentialIsStored()
    {
        await using var node = await GatewayFixture.StartAsync(o => o.Tokens = []);
        var exchange = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream: false));
        using var anonymous = new HttpClient { BaseAddress = node.Client.BaseAddress };

        var (status, _) = await GatewayFixture.GetJsonAsync(anonymous, $"/v1/signature/{GatewayFixture.ResponseId(exchange)}");
        Assert.Equal(200, status);
        var store = node.Gateway.Services.GetRequiredService<ISignatureStore>();
        var record = await store.GetAsync(exchange.ReceiptId!, TestContext.Current.CancellationToken);
        Assert.NotNull(record);
        Assert.Null(record.CredentialHash);
    }

    [Fact]
    public void Record_IsReadable_OnlyByTheSameCredentialHash()
    {
        var owned = new SignatureRecord("t", "e", "a", "d", "p", "{}", BearerHash("one"));
        var open = owned with { CredentialHash = null };

        Assert.True(owned.IsReadableBy(BearerHash("one")));
        Assert.False(owned.IsReadableBy(BearerHash("two")));
        Assert.False(owned.IsReadableBy(null));
        Assert.True(open.IsReadableBy(null));
        Assert.True(open.IsReadableBy(BearerHash("two")));
        Assert.Equal(owned, SignatureRecord.TryParse(owned.ToJson()));
    }

    /// <summary>Makes one streaming and one non-streaming request as the owner; checks both lookups for owner, other and anonymous.</summary>
    private static async Task<string> AssertTiedToCredentialAsync(GatewayFixture node, HttpClient reader, Uri readerAddress)
    {
        string lastId = "";
        foreach (var stream in new[] { false, true })
        {
            var exchange = await node.PostAsync("/v1/chat/completions", GatewayFixture.ChatBody("test-model", stream));
            Assert.Equal(200, exchange.Status);
            var id = GatewayFixture.ResponseId(exchange);
            lastId = id;

            using var other = new HttpClient { BaseAddress = readerAddress };
            other.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", OtherToken);
            using var anonymous = new HttpClient { BaseAddress = readerAddress };

            foreach (var path in new[] { $"/v1/signature/{id}", $"/v1/signature/{id}?signing_algo=ed25519", $"/v1/receipt/{exchange.ReceiptId}", $"/v1/receipt/{id}" })
            {
                Assert.Equal(200, (await GatewayFixture.GetJsonAsync(reader, path)).Status);
                var (otherStatus, otherBody) = await GatewayFixture.GetJsonAsync(other, path);
                Assert.Equal(404, otherStatus);
                var (_, unknownBody) = await GatewayFixture.GetJsonAsync(other, path.Replace(id, "chatcmpl-unknown", StringComparison.Ordinal).Replace(exchange.ReceiptId!, "pml-unknown", StringComparison.Ordinal));
                Assert.Equal(unknownBody.GetRawText(), otherBody.GetRawText());
                Assert.Equal(401, (await GatewayFixture.GetJsonAsync(anonymous, path)).Status);
            }
        }

        return lastId;
    }

    private static string BearerHash(string token) => PrivateMl.Gateway.Operations.BearerTokenAuth.CredentialHashOf(Encoding.UTF8.GetBytes(token));
}
