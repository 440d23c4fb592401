using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Kms.Keys;

/// <summary>One key epoch: when it began and, once retired, when its keys stopped being derivable.</summary>
public sealed record KeyEpoch(uint Epoch, DateTimeOffset Created, DateTimeOffset? Retired)
{
    public bool IsRetired => Retired is not null;
}

/// <summary>The epochs at one instant: the current one (new keys) and every epoch ever started.</summary>
public sealed record KeyEpochSet(uint Current, IReadOnlyList<KeyEpoch> Epochs)
{
    /// <summary>The epoch record, or null when it was never started.</summary>
    public KeyEpoch? Find(uint epoch) => Epochs.FirstOrDefault(e => e.Epoch == epoch);

    /// <summary>Epochs whose keys are still derivable, oldest first.</summary>
    public IEnumerable<uint> Active => Epochs.Where(e => !e.IsRetired).Select(e => e.Epoch);
}

/// <summary>
/// Key epochs of a KMS, in <c>epochs.json</c> of its state directory. dstack's KMS has no key versions; here every key
/// belongs to an epoch that is part of its derivation context (<see cref="KmsRootKeys.EpochRoot"/>; epoch 1 = dstack's
/// keys). <see cref="Rotate"/> starts a new epoch for new requests; older epochs stay derivable (to decrypt what was
/// encrypted to them) until <see cref="Retire"/>. The file is re-read when it changes, so <c>privateml kms rotate</c>
/// and <c>retire</c> act on a running server; writes go to a temporary file renamed over the old one.
/// </summary>
public sealed class KeyEpochStore
{
    public const string FileName = "epochs.json";

    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private KeyEpochSet? _cached;
    private DateTime _cachedStamp;

    public KeyEpochStore(string stateDirectory, TimeProvider timeProvider)
    {
        ArgumentException.ThrowIfNullOrEmpty(stateDirectory);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _path = Path.Combine(stateDirectory, FileName);
        _time = timeProvider;
    }

    /// <summary>The current epochs (epoch 1 alone when the file does not exist yet).</summary>
    public KeyEpochSet Current
    {
        get
        {
            lock (_gate)
            {
                var stamp = File.Exists(_path) ? File.GetLastWriteTimeUtc(_path) : DateTime.MinValue;
                if (_cached is null || stamp != _cachedStamp)
                {
                    _cached = Read();
                    _cachedStamp = stamp;
                }

                return _cached;
            }
        }
    }

    /// <summary>Starts a new epoch and makes it current; returns its number.</summary>
    public uint Rotate()
    {
        lock (_gate)
        {
            var set = Read();
            var next = set.Epochs.Max(e => e.Epoch) + 1;
            Write(new KeyEpochSet(next, [.. set.Epochs, new KeyEpoch(next, _time.GetUtcNow(), null)]));
            return next;
        }
    }

    /// <summary>Retires <paramref name="epoch"/>: its keys are no longer derived. The current epoch cannot be retired.</summary>
    /// <exception cref="InvalidOperationException">The epoch is unknown, already retired, or current.</exception>
    public void Retire(uint epoch)
    {
        lock (_gate)
        {
            var set = Read();
            var record = set.Find(epoch) ?? throw new InvalidOperationException($"epoch {epoch} was never started (epochs: {string.Join(", ", set.Epochs.Select(e => e.Epoch))})");
            if (record.IsRetired)
            {
                throw new InvalidOperationException($"epoch {epoch} is already retired");
            }

            if (epoch == set.Current)
            {
                throw new InvalidOperationException($"epoch {epoch} is the current epoch; rotate first");
            }

            Write(set with { Epochs = [.. set.Epochs.Select(e => e.Epoch == epoch ? e with { Retired = _time.GetUtcNow() } : e)] });
        }
    }

    /// <summary>Replaces the epochs (onboarding copies the source's).</summary>
    public void Replace(KeyEpochSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        Validate(set);
        lock (_gate)
        {
            Write(set);
        }
    }

    internal static string Serialize(KeyEpochSet set) => JsonSerializer.Serialize(
        new EpochFile { Current = set.Current, Epochs = [.. set.Epochs.Select(e => new EpochEntry { Epoch = e.Epoch, Created = e.Created, Retired = e.Retired })] },
        KmsJsonContext.Default.EpochFile);

    internal static KeyEpochSet Deserialize(string json)
    {
        var file = JsonSerializer.Deserialize(json, KmsJsonContext.Default.EpochFile)
            ?? throw new InvalidDataException("the epochs file is empty");
        var set = new KeyEpochSet(file.Current, [.. (file.Epochs ?? []).Select(e => new KeyEpoch(e.Epoch, e.Created, e.Retired))]);
        Validate(set);
        return set;
    }

    private static void Validate(KeyEpochSet set)
    {
        if (set.Epochs.Count == 0 || set.Epochs.Any(e => e.Epoch < KmsRootKeys.FirstEpoch)
            || set.Epochs.Select(e => e.Epoch).Distinct().Count() != set.Epochs.Count)
        {
            throw new InvalidDataException("the epochs must be distinct numbers from 1");
        }

        if (set.Find(set.Current) is not { IsRetired: false })
        {
            throw new InvalidDataException($"the current epoch {set.Current} is not an active epoch");
        }
    }

    private KeyEpochSet Read()
    {
        if (!File.Exists(_path))
        {
            return new KeyEpochSet(KmsRootKeys.FirstEpoch, [new KeyEpoch(KmsRootKeys.FirstEpoch, DateTimeOffset.UnixEpoch, null)]);
        }

        try
        {
            return Deserialize(File.ReadAllText(_path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{_path} is not an epochs file: {e.Message}", e);
        }
    }

    private void Write(KeyEpochSet set)
    {
        var temporary = _path + ".tmp";
        KmsRootKeys.WriteSecret(temporary, System.Text.Encoding.UTF8.GetBytes(Serialize(set)));
        File.Move(temporary, _path, overwrite: true);
        _cached = null;
    }
}

internal sealed class EpochFile
{
    [JsonPropertyName("current")]
    public uint Current { get; set; }

    [JsonPropertyName("epochs")]
    public List<EpochEntry>? Epochs { get; set; }
}

internal sealed class EpochEntry
{
    [JsonPropertyName("epoch")]
    public uint Epoch { get; set; }

    [JsonPropertyName("created")]
    public DateTimeOffset Created { get; set; }

    [JsonPropertyName("retired")]
    public DateTimeOffset? Retired { get; set; }
}
