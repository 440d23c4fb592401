using StackExchange.Redis;

namespace PrivateMl.Gateway.Receipts;

/// <summary>
/// Redis store for fleets: key <c>{model}:chat:{id}</c> (the seed proxy's key), value the record JSON, expiry
/// <see cref="GatewayOptions.SignatureTtl"/>. Any gateway sharing the Redis serves any receipt, across restarts.
/// </summary>
internal sealed class RedisSignatureStore : ISignatureStore, IAsyncDisposable
{
    private readonly ConnectionMultiplexer _redis;
    private readonly GatewayOptions _options;

    private RedisSignatureStore(ConnectionMultiplexer redis, GatewayOptions options)
    {
        _redis = redis;
        _options = options;
    }

    public static RedisSignatureStore Connect(GatewayOptions options)
    {
        var configuration = ConfigurationOptions.Parse(options.RedisConnection!);
        configuration.AbortOnConnectFail = false;
        return new RedisSignatureStore(ConnectionMultiplexer.Connect(configuration), options);
    }

    public async Task StoreAsync(IReadOnlyList<string> ids, SignatureRecord record, CancellationToken cancellationToken)
    {
        var value = record.ToJson();
        var db = _redis.GetDatabase();
        var tasks = new Task[ids.Count];
        for (var i = 0; i < ids.Count; i++)
        {
            tasks[i] = db.StringSetAsync(Key(ids[i]), value, _options.SignatureTtl);
        }

        await Task.WhenAll(tasks).WaitAsync(cancellationToken);
    }

    public async Task<SignatureRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        var value = await _redis.GetDatabase().StringGetAsync(Key(id)).WaitAsync(cancellationToken);
        return value.IsNull ? null : SignatureRecord.TryParse((byte[])value!);
    }

    public async ValueTask DisposeAsync() => await _redis.DisposeAsync();

    private RedisKey Key(string id) => $"{_options.ModelName}:chat:{id}";
}
