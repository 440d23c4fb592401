using System.Collections.Concurrent;

namespace PrivateMl.E2ee.Aci;

/// <summary>
/// Replay protection for E2EE v2 (e2ee-v2.md §7): a <c>(client key, service key, nonce)</c> triple is accepted once.
/// Unlike the reference (entry kept first-seen + 300 s, research W6), an entry lives until its request's timestamp
/// has left the acceptance window (<c>ts + 300 s</c>, and at least until first-seen), so no replay is ever acceptable
/// again. Bounded: when <see cref="Capacity"/> live entries exist, new requests are refused (fail closed) rather than
/// forgetting entries that still guard. One instance per gateway process; replicas that share a keyset must pin
/// clients or share this state.
/// </summary>
public sealed class AciReplayCache(TimeProvider time, int capacity = 1_000_000)
{
    private readonly ConcurrentDictionary<string, long> _entries = new(StringComparer.Ordinal);
    private readonly Lock _sweepLock = new();
    private long _nextSweep;

    public int Capacity { get; } = capacity > 0 ? capacity : throw new ArgumentOutOfRangeException(nameof(capacity));

    public int Count => _entries.Count;

    /// <summary>
    /// Claims the triple. False when it was seen before within its window (a replay) — or when the store is full,
    /// which <paramref name="full"/> tells apart.
    /// </summary>
    public bool TryClaim(ReadOnlySpan<byte> clientPublicKey, ReadOnlySpan<byte> servicePublicKey, string nonce, long timestamp, out bool full)
    {
        ArgumentNullException.ThrowIfNull(nonce);
        full = false;
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        Sweep(now);
        var key = Convert.ToHexStringLower(clientPublicKey) + "|" + Convert.ToHexStringLower(servicePublicKey) + "|" + nonce.ToLowerInvariant();
        var expires = Math.Max(timestamp, now) + (long)AciHeaders.Window.TotalSeconds + 1;
        if (_entries.TryGetValue(key, out var existing) && existing > now)
        {
            return false;
        }

        if (_entries.Count >= Capacity)
        {
            full = true;
            return false;
        }

        if (_entries.TryAdd(key, expires))
        {
            return true;
        }

        // Either a concurrent claim of the same triple won, or an expired entry is still there: replace only the latter.
        return _entries.TryGetValue(key, out existing) && existing <= now && _entries.TryUpdate(key, expires, existing);
    }

    private void Sweep(long now)
    {
        if (now < Volatile.Read(ref _nextSweep) && _entries.Count < Capacity)
        {
            return;
        }

        lock (_sweepLock)
        {
            if (now < _nextSweep && _entries.Count < Capacity)
            {
                return;
            }

            _nextSweep = now + 30;
            foreach (var (key, expires) in _entries)
            {
                if (expires <= now)
                {
                    _entries.TryRemove(new KeyValuePair<string, long>(key, expires));
                }
            }
        }
    }
}
