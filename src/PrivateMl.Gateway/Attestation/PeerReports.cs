using System.Net.Http.Headers;
using System.Text.Json;

namespace PrivateMl.Gateway.Attestation;

/// <summary>
/// Fetches the peers' reports over the caller's nonce (the seed's multi-server load balancer does the same) so one
/// report lists every node's attestation. A peer that fails or answers badly is left out and named in
/// <c>peer_errors</c>; its absence is visible, never papered over. Bodies are bounded before parsing.
/// </summary>
internal sealed class PeerReports(HttpClient http, GatewayOptions options)
{
    public const int MaxPeerReportBytes = 16 * 1024 * 1024;

    public static readonly (IReadOnlyList<JsonElement>, IReadOnlyList<string>) Empty = ([], []);

    public async Task<(IReadOnlyList<JsonElement> Attestations, IReadOnlyList<string> Errors)> FetchAsync(byte[] nonce, string algo, CancellationToken cancellationToken)
    {
        if (options.Peers.Count == 0)
        {
            return Empty;
        }

        var results = await Task.WhenAll(options.Peers.Select(peer => FetchOneAsync(peer, nonce, algo, cancellationToken)));
        var attestations = new List<JsonElement>();
        var errors = new List<string>();
        foreach (var (items, error) in results)
        {
            attestations.AddRange(items);
            if (error is not null)
            {
                errors.Add(error);
            }
        }

        return (attestations, errors);
    }

    private async Task<(IReadOnlyList<JsonElement>, string?)> FetchOneAsync(Uri peer, byte[] nonce, string algo, CancellationToken cancellationToken)
    {
        var nonceHex = Convert.ToHexStringLower(nonce);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.PeerTimeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(peer, $"/v1/attestation/report?nonce={nonceHex}&signing_algo={algo}"));
            if (options.PeerToken is { Length: > 0 } token)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }

            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                return ([], $"{peer}: answered {(int)response.StatusCode}");
            }

            if (response.Content.Headers.ContentLength is > MaxPeerReportBytes)
            {
                return ([], $"{peer}: report larger than {MaxPeerReportBytes} bytes");
            }

            await using var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
            var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(chunk, timeout.Token)) > 0)
            {
                if (buffer.Length + read > MaxPeerReportBytes)
                {
                    return ([], $"{peer}: report larger than {MaxPeerReportBytes} bytes");
                }

                buffer.Write(chunk, 0, read);
            }

            using var doc = JsonDocument.Parse(buffer.ToArray());
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("request_nonce", out var echoed) || echoed.GetString() != nonceHex)
            {
                return ([], $"{peer}: report is not over our nonce");
            }

            var items = root.TryGetProperty("all_attestations", out var all) && all.ValueKind == JsonValueKind.Array
                ? all.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Object).Select(e => e.Clone()).ToList()
                : [root.Clone()];
            return (items, null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException or OperationCanceledException or InvalidOperationException)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            return ([], $"{peer}: {e.GetType().Name}");
        }
    }
}
