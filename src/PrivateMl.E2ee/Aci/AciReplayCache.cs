using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.E2ee.Aci;

/// <summary>What a replay claim found.</summary>
public enum AciReplayOutcome
{
    /// <summary>First use of the triple inside its window: the request may proceed.</summary>
    Claimed = 1,

    /// <summary>The triple was already used inside its window (<c>e2ee_replay_detected</c>).</summary>
    Replayed,

    /// <summary>The store is full of live entries; refused rather than left unguarded.</summary>
    Full,

    /// <summary>A shared store could not be reached; refused rather than left unguarded.</summary>
    Unavailable,
}

/// <summary>
/// Where E2EE v2 replay claims live (e2ee-v2.md §7): <see cref="AciReplayCache"/> in one process, or a store that
/// replicas sharing a keyset share (the spec's "MUST also share replay state"), such as the gateway's Redis store.
/// Every implementation keeps a claim until <see cref="AciReplayCache.ExpiresAt"/> and fails closed.
/// </summary>
public interface IAciReplayStore
{
    /// <summary>Claims <c>(client key, service key, nonce)</c> for a request stamped <paramref name="timestamp"/>.</summary>
    ValueTask<AciReplayOutcome> TryClaimAsync(ReadOnlyMemory<byte> clientPublicKey, ReadOnlyMemory<byte> servicePublicKey, string nonce, long timestamp, CancellationToken cancellationToken);
}

/// <summary>
/// Replay protection for E2EE v2 (e2ee-v2.md §7): a <c>(client key, service key, nonce)</c> triple is accepted once.
/// Unlike the reference (entry kept first-seen + 300 s, research W6), an entry lives until its request's timestamp
/// has left the acceptance window (<c>ts + 300 s</c>, and at least until first-seen), so no replay is ever acceptable
/// again. Bounded: when <see cref="Capacity"/> live entries exist, new requests are refused (fail closed) rather than
/// forgetting entries that still guard. One instance per gateway process; replicas that share a keyset use a shared
/// <see cref="IAciReplayStore"/> instead (the gateway's Redis store when Redis is configured).
/// </summary>
public sealed class AciReplayCache(TimeProvider time, int capacity = 1_000_000) : IAciReplayStore
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
        var key = KeyOf(clientPublicKey, servicePublicKey, nonce);
        var expires = ExpiresAt(timestamp, now);
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

    public ValueTask<AciReplayOutcome> TryClaimAsync(ReadOnlyMemory<byte> clientPublicKey, ReadOnlyMemory<byte> servicePublicKey, string nonce, long timestamp, CancellationToken cancellationToken) =>
        ValueTask.FromResult(TryClaim(clientPublicKey.Span, servicePublicKey.Span, nonce, timestamp, out var full)
            ? AciReplayOutcome.Claimed
            : full ? AciReplayOutcome.Full : AciReplayOutcome.Replayed);

    /// <summary>The triple as one key: hex keys and the nonce in lower case (both hex cases are the same nonce).</summary>
    public static string KeyOf(ReadOnlySpan<byte> clientPublicKey, ReadOnlySpan<byte> servicePublicKey, string nonce)
    {
        ArgumentNullException.ThrowIfNull(nonce);
        return Convert.ToHexStringLower(clientPublicKey) + "|" + Convert.ToHexStringLower(servicePublicKey) + "|" + nonce.ToLowerInvariant();
    }

    /// <summary><see cref="KeyOf"/> hashed (SHA-256, hex): a fixed-size key for shared stores.</summary>
    public static string DigestOf(ReadOnlySpan<byte> clientPublicKey, ReadOnlySpan<byte> servicePublicKey, string nonce) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(KeyOf(clientPublicKey, servicePublicKey, nonce))));

    /// <summary>
    /// Unix second until which a claim must be kept: until the request's timestamp has left the acceptance window,
    /// and never shorter than a window after first sight (<paramref name="now"/>).
    /// </summary>
    public static long ExpiresAt(long timestamp, long now) => Math.Max(timestamp, now) + (long)AciHeaders.Window.TotalSeconds + 1;

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
