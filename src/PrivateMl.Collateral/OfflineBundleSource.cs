using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Collateral;

/// <summary>
/// Collateral from dcap-qvl JSON bundles on disk: one file, or every <c>*.json</c> file of a directory. A bundle is
/// served only for the request it was issued for (TEE and FMSPC from its TCB info, CA type from its PCK CRL issuer);
/// among several matching bundles the one with the newest TCB info wins. No network, no clock.
/// </summary>
public sealed class OfflineBundleSource : ICollateralSource
{
    private readonly string path;

    /// <param name="path">A bundle file or a directory of bundle files.</param>
    public OfflineBundleSource(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        this.path = path;
    }

    public async Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (File.Exists(path))
        {
            var (collateral, facts) = await LoadAsync(path, cancellationToken).ConfigureAwait(false);
            return facts.Matches(request)
                ? collateral
                : throw CollateralErrors.Unavailable($"{path} holds collateral for {facts.Describe()}, not for {request}");
        }

        if (!Directory.Exists(path))
        {
            throw CollateralErrors.Unavailable($"collateral bundle {path} does not exist");
        }

        (DcapCollateral Collateral, CollateralFacts Facts)? best = null;
        var skipped = new List<string>();
        foreach (var file in Directory.EnumerateFiles(path, "*.json").Order(StringComparer.Ordinal))
        {
            (DcapCollateral, CollateralFacts) candidate;
            try
            {
                candidate = await LoadAsync(file, cancellationToken).ConfigureAwait(false);
            }
            catch (AttestationException ex) when (ex.Code is ErrorCode.CollateralMalformed or ErrorCode.CollateralUnavailable)
            {
                skipped.Add(Path.GetFileName(file));
                continue;
            }

            if (candidate.Item2.Matches(request) && (best is null || candidate.Item2.TcbInfoIssueDate > best.Value.Facts.TcbInfoIssueDate))
            {
                best = candidate;
            }
        }

        if (best is { } found)
        {
            return found.Collateral;
        }

        var note = skipped.Count == 0 ? string.Empty : $" ({skipped.Count} file(s) skipped as not collateral: {string.Join(", ", skipped)})";
        throw CollateralErrors.Unavailable($"no bundle in {path} is for {request}{note}");
    }

    internal static async Task<(DcapCollateral Collateral, CollateralFacts Facts)> LoadAsync(string file, CancellationToken cancellationToken)
    {
        byte[] bytes;
        try
        {
            var length = new FileInfo(file).Length;
            if (length > CollateralJson.MaxBundleBytes)
            {
                throw CollateralErrors.Malformed($"{file}: {length} bytes exceeds the {CollateralJson.MaxBundleBytes}-byte limit for a collateral bundle");
            }

            bytes = await File.ReadAllBytesAsync(file, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CollateralErrors.Unavailable($"{file}: cannot be read ({ex.Message})", ex);
        }

        var collateral = CollateralJson.Parse(bytes, file);
        return (collateral, CollateralFacts.Read(collateral, file));
    }
}
