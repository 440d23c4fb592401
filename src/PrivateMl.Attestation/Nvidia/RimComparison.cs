using System.Security.Cryptography;

namespace PrivateMl.Attestation.Nvidia;

/// <summary>Which RIM a measurement index came from.</summary>
public enum RimKind
{
    Driver,
    Vbios,
}

/// <summary>One compared index that did not match (or was missing from the report).</summary>
public sealed record RimMismatch(RimKind Kind, int Index, string? Actual);

/// <summary>The outcome of comparing a report's measurement blocks with driver and VBIOS RIMs.</summary>
public sealed record RimComparisonResult(
    int MatchedCount,
    IReadOnlyList<int> Skipped,
    IReadOnlyList<RimMismatch> Mismatches,
    IReadOnlyList<int> Conflicts)
{
    public bool Success => Mismatches.Count == 0 && Conflicts.Count == 0;
}

/// <summary>
/// NVIDIA's measurement comparison: every active index of each RIM must equal one of its alternatives in the report
/// (RIM index i ↔ SPDM block i+1); index 35 is skipped when NVDEC0 is disabled (0x55); an index active in both RIMs is
/// a conflict.
/// </summary>
public static class RimComparison
{
    public const int Nvdec0Index = 35;
    public const byte Nvdec0Disabled = 0x55;

    public static RimComparisonResult Compare(SpdmMeasurementReport report, NvidiaRim? driver, NvidiaRim? vbios, byte? nvdec0Status)
    {
        ArgumentNullException.ThrowIfNull(report);
        var matched = 0;
        var skipped = new SortedSet<int>();
        var mismatches = new List<RimMismatch>();
        var conflicts = new List<int>();
        if (driver is not null && vbios is not null)
        {
            var driverActive = driver.ActiveIndices.ToHashSet();
            conflicts.AddRange(vbios.ActiveIndices.Where(driverActive.Contains));
        }

        foreach (var (kind, rim) in new[] { (RimKind.Driver, driver), (RimKind.Vbios, vbios) })
        {
            if (rim is null)
            {
                continue;
            }

            foreach (var m in rim.Measurements.Where(m => m.Active).OrderBy(m => m.Index))
            {
                if (m.Index == Nvdec0Index && nvdec0Status == Nvdec0Disabled)
                {
                    skipped.Add(m.Index);
                    continue;
                }

                var block = report.FindBlock(m.Index + 1);
                if (block is null)
                {
                    mismatches.Add(new RimMismatch(kind, m.Index, null));
                    continue;
                }

                var value = block.Value;
                if (m.Alternatives.Any(h => h.Length == value.Length && CryptographicOperations.FixedTimeEquals(h, value.Span)))
                {
                    matched++;
                }
                else
                {
                    mismatches.Add(new RimMismatch(kind, m.Index, Convert.ToHexStringLower(value.Span)));
                }
            }
        }

        return new RimComparisonResult(matched, [.. skipped], mismatches, conflicts);
    }
}

/// <summary>Where RIMs come from: by ID (<c>NV_GPU_DRIVER_GH100_…</c>, <c>NV_GPU_VBIOS_…</c>).</summary>
public interface IRimSource
{
    /// <summary>The RIM document bytes for <paramref name="rimId"/>, or null when unknown.</summary>
    byte[]? Find(string rimId);
}

/// <summary>RIMs held in memory, keyed by ID.</summary>
public sealed class InMemoryRimSource(IReadOnlyDictionary<string, byte[]> rims) : IRimSource
{
    public byte[]? Find(string rimId) => rims.TryGetValue(rimId, out var v) ? v : null;
}
