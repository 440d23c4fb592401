using System.Net.Http.Headers;
using System.Text;

namespace PrivateMl.Client.Tests.E2ee.Aci;

/// <summary>
/// A man in the middle on the loopback link between client and gateway: records the exact bytes each way (what the
/// gateway received and sent), and can rewrite the request (headers, body) or the response (headers, body).
/// </summary>
internal sealed class AciMitm() : DelegatingHandler(new HttpClientHandler())
{
    public List<(HttpRequestMessage Request, byte[] Body)> Requests { get; } = [];

    public List<byte[]> Responses { get; } = [];

    public Func<HttpRequestMessage, byte[], byte[]>? RewriteRequest { get; set; }

    public Func<HttpResponseMessage, byte[], byte[]>? RewriteResponse { get; set; }

    /// <summary>Everything that crossed the link, as text (headers and bodies).</summary>
    public string Capture()
    {
        var b = new StringBuilder();
        foreach (var (request, body) in Requests)
        {
            b.Append(request.Method).Append(' ').Append(request.RequestUri).Append('\n');
            foreach (var h in request.Headers)
            {
                b.Append(h.Key).Append(": ").Append(string.Join(",", h.Value)).Append('\n');
            }

            b.Append(Encoding.UTF8.GetString(body)).Append('\n');
        }

        foreach (var body in Responses)
        {
            b.Append(Encoding.UTF8.GetString(body)).Append('\n');
        }

        return b.ToString();
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var isCompletion = request.RequestUri!.AbsolutePath.EndsWith("completions", StringComparison.Ordinal);
        if (request.Content is not null)
        {
            var body = await request.Content.ReadAsByteArrayAsync(cancellationToken);
            var type = request.Content.Headers.ContentType;
            if (isCompletion && RewriteRequest is not null)
            {
                body = RewriteRequest(request, body);
            }

            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = type;
            Requests.Add((request, body));
        }

        var response = await base.SendAsync(request, cancellationToken);
        if (isCompletion)
        {
            var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            Responses.Add(bytes);
            if (RewriteResponse is not null)
            {
                var type = response.Content.Headers.ContentType;
                bytes = RewriteResponse(response, bytes);
                response.Content = new ByteArrayContent(bytes);
                response.Content.Headers.ContentType = type ?? new MediaTypeHeaderValue("application/json");
            }
            else
            {
                var type = response.Content.Headers.ContentType;
                response.Content = new ByteArrayContent(bytes);
                response.Content.Headers.ContentType = type;
            }
        }

        return response;
    }

    /// <summary>The SSE events of a body (each without its blank-line terminator).</summary>
    public static List<string> Events(byte[] body) =>
        [.. Encoding.UTF8.GetString(body).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)];

    public static byte[] Join(IEnumerable<string> events) => Encoding.UTF8.GetBytes(string.Concat(events.Select(e => e + "\n\n")));
}

/// <summary>A clock the test sets.</summary>
internal sealed class ShiftedTime(TimeSpan shift) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => DateTimeOffset.UtcNow + shift;
}
