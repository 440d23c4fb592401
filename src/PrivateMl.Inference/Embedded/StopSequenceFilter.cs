namespace PrivateMl.Inference.Embedded;

/// <summary>
/// Applies OpenAI <c>stop</c> sequences to streamed text: text that could still become a stop sequence is held back,
/// and once one appears the output ends just before it (the stop sequence itself is never emitted).
/// </summary>
internal sealed class StopSequenceFilter(IReadOnlyList<string> stops)
{
    private string pending = "";

    public bool Stopped { get; private set; }

    /// <summary>Adds generated text; returns the part that is safe to emit now.</summary>
    public string Push(string text)
    {
        if (Stopped)
        {
            return "";
        }

        pending += text;
        if (stops.Count == 0)
        {
            return Take(pending.Length);
        }

        var first = -1;
        foreach (var stop in stops)
        {
            var at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }

        if (first >= 0)
        {
            Stopped = true;
            var emit = pending[..first];
            pending = "";
            return emit;
        }

        // Hold back the longest suffix that is a proper prefix of some stop sequence.
        var hold = 0;
        foreach (var stop in stops)
        {
            for (var k = Math.Min(stop.Length - 1, pending.Length); k > hold; k--)
            {
                if (pending.AsSpan(pending.Length - k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    hold = k;
                    break;
                }
            }
        }

        return Take(pending.Length - hold);
    }

    /// <summary>At the end of generation: whatever was held back is output after all.</summary>
    public string Flush() => Stopped ? "" : Take(pending.Length);

    private string Take(int count)
    {
        var emit = pending[..count];
        pending = pending[count..];
        return emit;
    }
}
