using PrivateMl.E2ee.Aci;
using StackExchange.Redis;

namespace PrivateMl.Gateway.E2ee.Aci;

/// <summary>
/// The ACI E2EE v2 replay store shared by every gateway on one Redis (e2ee-v2.md §7: replicas sharing a keyset MUST
/// share replay state). A claim is <c>SET privateml:aci-replay:{sha256(client key | service key | nonce)} 1 NX EX ttl</c>
/// with ttl up to <see cref="AciReplayCache.ExpiresAt"/> (the request's timestamp out of the window), so a request
/// replayed to any instance inside its window finds the key. Redis errors and timeouts refuse the request
/// (<see cref="AciReplayOutcome.Unavailable"/>), never let it through unguarded.
/// </summary>
internal sealed class RedisAciReplayStore : IAciReplayStore, IAsyncDisposable
{
    internal const string KeyPrefix = "privateml:aci-replay:";

    private readonly ConnectionMultiplexer _redis;
    private readonly TimeProvider _time;

    private RedisAciReplayStore(ConnectionMultiplexer redis, TimeProvider time)
    {
        _redis = redis;
        _time = time;
    }

    public static RedisAciReplayStore Connect(string connection, TimeProvider time)
    {
        var configuration = ConfigurationOptions.Parse(connection);
        configuration.AbortOnConnectFail = false;
        return new RedisAciReplayStore(ConnectionMultiplexer.Connect(configuration), time);
    }

    public async ValueTask<AciReplayOutcome> TryClaimAsync(ReadOnlyMemory<byte> clientPublicKey, ReadOnlyMemory<byte> servicePublicKey, string nonce, long timestamp, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        var ttl = TimeSpan.FromSeconds(AciReplayCache.ExpiresAt(timestamp, now) - now);
        var key = KeyPrefix + AciReplayCache.DigestOf(clientPublicKey.Span, servicePublicKey.Span, nonce);
        try
        {
            var claimed = await _redis.GetDatabase().StringSetAsync(key, 1, ttl, When.NotExists).WaitAsync(cancellationToken);
            return claimed ? AciReplayOutcome.Claimed : AciReplayOutcome.Replayed;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return AciReplayOutcome.Unavailable;
        }
    }

    public async ValueTask DisposeAsync() => await _redis.DisposeAsync();
}
