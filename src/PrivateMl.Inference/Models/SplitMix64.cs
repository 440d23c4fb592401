namespace PrivateMl.Inference.Models;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny PRNG with a published definition, so the demo model's weights can be
/// reproduced bit for bit from any language. Not for secrets.
/// </summary>
public struct SplitMix64(ulong seed)
{
    private ulong state = seed;

    public ulong Next()
    {
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A float in [-1, 1) from the top 24 bits, exact in binary32: <c>(next &gt;&gt; 40) / 2^23 - 1</c>.</summary>
    public float NextSymmetric() => ((Next() >> 40) / 8388608f) - 1f;
}
