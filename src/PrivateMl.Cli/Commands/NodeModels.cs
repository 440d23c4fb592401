using System.Net.Http.Headers;
using System.Text.Json;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// Which model a node serves, for <c>chat</c> without <c>--model</c>: the first id of the OpenAI <c>/v1/models</c> list.
/// Only a convenience — any failure (unreachable, not JSON, empty list, oversized answer) yields null and the caller's
/// fallback; the answer that matters is still verified end to end.
/// </summary>
internal static class NodeModels
{
    private const int MaxListBytes = 1024 * 1024;

    public static async Task<string?> FirstAsync(Uri? node, string? token, HttpMessageHandler? handler, CancellationToken cancellationToken)
    {
        if (node is null)
        {
            return null;
        }

        using var http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        http.Timeout = TimeSpan.FromSeconds(10);
        http.MaxResponseContentBufferSize = MaxListBytes;
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(node.ToString().TrimEnd('/') + "/v1/models"));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        try
        {
            using var response = await http.SendAsync(request, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }

            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            using var document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array
                && data.GetArrayLength() > 0 && data[0].ValueKind == JsonValueKind.Object
                && data[0].TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
                && id.GetString() is { Length: > 0 and <= 256 } name
                ? name
                : null;
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or InvalidOperationException
            || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return null;
        }
    }
}
