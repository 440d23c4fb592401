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
/// (<see cref="GatewayOptions.MaxStoredSignatures"/>, oldest evicted first). Each record is kept as its UTF-8 JSON in
/// one array, as Redis keeps it, rather than as the record object and its strings: two objects per response instead of
/// about eight for the garbage collector to trace and promote, and 2.9 KB instead of 4.0 KB per stored signature (the
/// bench's "gateway live heap" line), so the default bound of a million signatures is about 2.9 GB. Reads (rare next to
/// writes) parse it back.
/// </summary>
internal sealed class MemorySignatureStore(GatewayOptions options, TimeProvider time) : ISignatureStore
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Id, Entry Entry)> _order = new();
    private readonly Lock _evictGate = new();

    /// <summary>Measured size of one stored signature with its two index entries (bench: "gateway live heap"), rounded up.</summary>
    public const int ApproximateBytesPerSignature = 3_000;

    public int Count => _entries.Count;

    /// <summary>About how much memory the store holds when full (for the start-up log and its warning).</summary>
    public static long MemoryBound(GatewayOptions options) => (long)options.MaxStoredSignatures * ApproximateBytesPerSignature;

    public Task StoreAsync(IReadOnlyList<string> ids, SignatureRecord record, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var now = time.GetUtcNow();
        var entry = new Entry(record.ToJson(), now + options.SignatureTtl);
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
            return Task.FromResult(SignatureRecord.TryParse(entry.Json));
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

    private sealed record Entry(byte[] Json, DateTimeOffset ExpiresAt);
}
