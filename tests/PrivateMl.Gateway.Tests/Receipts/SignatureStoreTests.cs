using PrivateMl.Gateway.Receipts;

namespace PrivateMl.Gateway.Tests.Receipts;

public sealed class SignatureStoreTests
{
    private static SignatureRecord Record(int i) => new($"t{i}", "0xe", "0xa", "ed", "pub", "{}");

    [Fact]
    public async Task Memory_KeepsFarMoreThanTheSeedProxy_AndDropsTheOldestPastTheCount()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        var store = new MemorySignatureStore(new GatewayOptions { MaxStoredSignatures = 10_000 }, time);
        var ct = TestContext.Current.CancellationToken;

        for (var i = 0; i < 10_000; i++)
        {
            await store.StoreAsync([$"id{i}"], Record(i), ct);
        }

        Assert.Equal("t0", (await store.GetAsync("id0", ct))?.Text);
        await store.StoreAsync(["id-next"], Record(-1), ct);
        Assert.Null(await store.GetAsync("id0", ct));
        Assert.Equal("t1", (await store.GetAsync("id1", ct))?.Text);
        Assert.Equal(10_000, store.Count);
    }

    [Fact]
    public async Task Memory_ForgetsAfterTheTtl()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        var store = new MemorySignatureStore(new GatewayOptions { SignatureTtl = TimeSpan.FromMinutes(10) }, time);
        var ct = TestContext.Current.CancellationToken;
        await store.StoreAsync(["a", "b"], Record(1), ct);

        time.Now += TimeSpan.FromMinutes(9);
        Assert.NotNull(await store.GetAsync("b", ct));
        time.Now += TimeSpan.FromMinutes(2);
        Assert.Null(await store.GetAsync("a", ct));
        await store.StoreAsync(["c"], Record(2), ct);
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void Record_RoundTrips_InTheSeedCacheShape()
    {
        var json = Record(7).ToJson();

        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(
            ["text", "signature_ecdsa", "signing_address_ecdsa", "signature_ed25519", "signing_address_ed25519", "receipt"],
            doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(Record(7), SignatureRecord.TryParse(json));
        Assert.Null(SignatureRecord.TryParse("[1]"u8));
        Assert.Null(SignatureRecord.TryParse("{}"u8));
    }

    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
