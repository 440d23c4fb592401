using System.Collections.Concurrent;

namespace PrivateMl.Gateway.Receipts;

/// <summary>Where signatures and receipts live until they expire: memory (one instance) or Redis (a fleet).</summary>
public interface ISignatureStore
{
    /// <summary>Stores <paramref name="record"/> under each id (the response id and the gateway's receipt id).</summary>
    Task StoreAsync(IReadOnlyList<string> ids, SignatureRecord record, CancellationToken cancellationToken);

    Task<SignatureRecord?> GetAsync(string id, CancellationToken cancellationToken);
}

/// <summary>
/// In-memory store bounded by time (<see cref="GatewayOptions.SignatureTtl"/>) and count
/// (<see cref="GatewayOptions.MaxStoredSignatures"/>, oldest evicted first).
/// </summary>
internal sealed class MemorySignatureStore(GatewayOptions options, TimeProvider time) : ISignatureStore
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Id, Entry Entry)> _order = new();
    private readonly Lock _evictGate = new();

    public int Count => _entries.Count;

    public Task StoreAsync(IReadOnlyList<string> ids, SignatureRecord record, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var entry = new Entry(record, now + options.SignatureTtl);
        foreach (var id in ids)
        {
            _entries[id] = entry;
            _order.Enqueue((id, entry));
        }

        Evict(now);
        return Task.CompletedTask;
    }

    public Task<SignatureRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        if (_entries.TryGetValue(id, out var entry) && entry.ExpiresAt > time.GetUtcNow())
        {
            return Task.FromResult<SignatureRecord?>(entry.Record);
        }

        return Task.FromResult<SignatureRecord?>(null);
    }

    private void Evict(DateTimeOffset now)
    {
        lock (_evictGate)
        {
            while (_order.TryPeek(out var head) && (head.Entry.ExpiresAt <= now || _entries.Count > options.MaxStoredSignatures))
            {
                _order.TryDequeue(out _);
                // Only remove the entry if it was not overwritten by a later store under the same id.
                _entries.TryRemove(new KeyValuePair<string, Entry>(head.Id, head.Entry));
            }
        }
    }

    private sealed record Entry(SignatureRecord Record, DateTimeOffset ExpiresAt);
}
