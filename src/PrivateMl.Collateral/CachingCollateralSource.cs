using PrivateMl.Attestation.Pck;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral;

/// <summary>
/// An on-disk cache in front of another source. An entry is served only while every item in it is current: until the
/// earliest <c>nextUpdate</c> of the TCB info, the QE identity and the two CRLs, less <see cref="RefreshMargin"/>.
/// After that the inner source is asked again; if it fails, the failure stands (a stale entry is never served). Entries
/// are dcap-qvl JSON files named <c>{tee}-{ca}-{FMSPC}.json</c>, so the cache directory doubles as an offline bundle.
/// </summary>
public sealed class CachingCollateralSource : ICollateralSource
{
    private readonly ICollateralSource inner;
    private readonly string directory;
    private readonly TimeProvider time;

    public CachingCollateralSource(ICollateralSource inner, string directory, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(time);
        this.inner = inner;
        this.directory = directory;
        this.time = time;
    }

    /// <summary>Refresh this long before the earliest nextUpdate, so that an entry does not expire mid-verification.</summary>
    public TimeSpan RefreshMargin { get; init; } = TimeSpan.Zero;

    internal string PathFor(CollateralRequest request) =>
        Path.Combine(directory, $"{(request.Tee == TeeType.Tdx ? "tdx" : "sgx")}-{(request.Ca == PckCaType.Platform ? "platform" : "processor")}-{request.Fmspc}.json");

    public async Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var file = PathFor(request);
        if (File.Exists(file))
        {
            try
            {
                var (cached, facts) = await OfflineBundleSource.LoadAsync(file, cancellationToken).ConfigureAwait(false);
                if (facts.Matches(request) && IsFresh(facts))
                {
                    return cached;
                }
            }
            catch (AttestationException ex) when (ex.Code is ErrorCode.CollateralMalformed or ErrorCode.CollateralUnavailable)
            {
                // A damaged or unreadable entry is a miss; the fetch below replaces it.
            }
        }

        var fetched = await inner.GetCollateralAsync(request, cancellationToken).ConfigureAwait(false);
        CollateralFacts fetchedFacts;
        try
        {
            fetchedFacts = CollateralFacts.Read(fetched, "fetched collateral");
        }
        catch (AttestationException)
        {
            return fetched; // not ours to judge; the verifier will. Just don't file what we cannot date.
        }

        if (fetchedFacts.Matches(request) && IsFresh(fetchedFacts))
        {
            Store(file, fetched);
        }

        return fetched;
    }

    private bool IsFresh(CollateralFacts facts) => time.GetUtcNow() < facts.EarliestNextUpdate - RefreshMargin;

    private void Store(string file, DcapCollateral collateral)
    {
        try
        {
            Directory.CreateDirectory(directory);
            var temp = file + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllText(temp, CollateralJson.Serialize(collateral));
            File.Move(temp, file, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A cache that cannot be written is only a slower cache; the collateral itself is fine.
        }
    }
}
