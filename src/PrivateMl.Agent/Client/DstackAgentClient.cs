using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace PrivateMl.Agent.Client;

/// <summary>A quote from the agent: the raw TDX quote, its event log (dstack JSON text) and the report data it carries.</summary>
public sealed record DstackQuote(byte[] Quote, string EventLog, byte[] ReportData, string? VmConfig);

/// <summary>A key derived by the agent, with the KMS signature chain that vouches for it.</summary>
public sealed class DstackKey(byte[] key, IReadOnlyList<byte[]> signatureChain)
{
    /// <summary>The secret key bytes; the caller clears them when done.</summary>
    public byte[] Key { get; } = key;

    public IReadOnlyList<byte[]> SignatureChain { get; } = signatureChain;

    public override string ToString() => nameof(DstackKey);
}

/// <summary>The agent calls an app makes (the dstack guest API); implemented over the Unix socket by <see cref="DstackAgentClient"/>.</summary>
public interface IDstackAgentClient
{
    Task<DstackQuote> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken);

    Task<DstackKey> GetKeyAsync(string path, string purpose, string algorithm, CancellationToken cancellationToken);

    /// <summary>The agent's <c>Info</c> answer as JSON text (app_id, instance_id, tcb_info, …).</summary>
    Task<string> InfoAsync(CancellationToken cancellationToken);

    Task EmitEventAsync(string eventName, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);
}

/// <summary>The agent answered with an error status, an unreadable body, or could not be reached.</summary>
public sealed class DstackAgentException(string message, int? statusCode = null, Exception? inner = null) : Exception(message, inner)
{
    public int? StatusCode { get; } = statusCode;
}

/// <summary>
/// Client for the dstack guest agent API (POST <c>/GetQuote</c>, <c>/GetKey</c>, <c>/Info</c>, <c>/EmitEvent</c> with JSON
/// bodies, bytes as hex) over its Unix socket (default <see cref="DefaultSocketPath"/>) or an HTTP base address.
/// Responses are bounded in size before they are parsed. Thread-safe; one instance per process.
/// </summary>
public sealed class DstackAgentClient : IDstackAgentClient, IDisposable
{
    public const string DefaultSocketPath = "/var/run/dstack.sock";

    /// <summary>Largest agent response accepted (a quote plus a long event log fits easily).</summary>
    public const int MaxResponseBytes = 8 * 1024 * 1024;

    private readonly HttpClient _http;

    public DstackAgentClient(string? socketPath = null, TimeSpan? timeout = null)
    {
        var path = string.IsNullOrEmpty(socketPath) ? DefaultSocketPath : socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://localhost"), Timeout = timeout ?? TimeSpan.FromSeconds(30) };
        SocketPath = path;
    }

    /// <summary>An agent reached over HTTP (e.g. the simulator's TCP listener); the client takes ownership.</summary>
    public DstackAgentClient(HttpClient http)
    {
        ArgumentNullException.ThrowIfNull(http);
        _http = http;
    }

    public string? SocketPath { get; }

    public async Task<DstackQuote> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken)
    {
        if (reportData.Length > 64)
        {
            throw new ArgumentException("report data is at most 64 bytes", nameof(reportData));
        }

        using var doc = await PostAsync("/GetQuote", w => w.WriteString("report_data", Convert.ToHexStringLower(reportData.Span)), cancellationToken);
        var root = doc!.RootElement;
        return new DstackQuote(
            Hex(root, "quote"),
            Text(root, "event_log"),
            root.TryGetProperty("report_data", out _) ? Hex(root, "report_data") : reportData.ToArray(),
            root.TryGetProperty("vm_config", out var vm) && vm.ValueKind == JsonValueKind.String ? vm.GetString() : null);
    }

    public async Task<DstackKey> GetKeyAsync(string path, string purpose, string algorithm, CancellationToken cancellationToken)
    {
        using var doc = await PostAsync("/GetKey", w =>
        {
            w.WriteString("path", path);
            w.WriteString("purpose", purpose);
            w.WriteString("algorithm", algorithm);
        }, cancellationToken);
        var root = doc!.RootElement;
        var chain = new List<byte[]>();
        if (root.TryGetProperty("signature_chain", out var array) && array.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in array.EnumerateArray())
            {
                chain.Add(ParseHex(item.GetString() ?? "", "signature_chain"));
            }
        }

        return new DstackKey(Hex(root, "key"), chain);
    }

    public async Task<string> InfoAsync(CancellationToken cancellationToken)
    {
        using var doc = await PostAsync("/Info", null, cancellationToken);
        return doc!.RootElement.GetRawText();
    }

    public async Task EmitEventAsync(string eventName, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        using var doc = await PostAsync("/EmitEvent", w =>
        {
            w.WriteString("event", eventName);
            w.WriteString("payload", Convert.ToHexStringLower(payload.Span));
        }, cancellationToken, expectObject: false);
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonDocument?> PostAsync(string path, Action<Utf8JsonWriter>? body, CancellationToken cancellationToken, bool expectObject = true)
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            body?.Invoke(writer);
            writer.WriteEndObject();
        }

        using var content = new ByteArrayContent(buffer.GetBuffer(), 0, (int)buffer.Length);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsync(path, content, cancellationToken);
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new DstackAgentException($"the guest agent at {SocketPath ?? _http.BaseAddress?.ToString()} could not be reached: {e.Message}", null, e);
        }

        using (response)
        {
            if (response.Content.Headers.ContentLength is > MaxResponseBytes)
            {
                throw new DstackAgentException($"agent {path} answer is larger than {MaxResponseBytes} bytes", (int)response.StatusCode);
            }

            var bytes = await ReadBoundedAsync(response.Content, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                var text = Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 512));
                throw new DstackAgentException($"agent {path} answered {(int)response.StatusCode}: {text}", (int)response.StatusCode);
            }

            if (!expectObject && bytes.Length == 0)
            {
                return null;
            }

            try
            {
                var doc = JsonDocument.Parse(bytes);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                {
                    doc.Dispose();
                    if (!expectObject)
                    {
                        return null;
                    }

                    throw new DstackAgentException($"agent {path} answer is not a JSON object", (int)response.StatusCode);
                }

                return doc;
            }
            catch (JsonException e)
            {
                throw new DstackAgentException($"agent {path} answer is not JSON", (int)response.StatusCode, e);
            }
        }
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var output = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (output.Length + read > MaxResponseBytes)
            {
                throw new DstackAgentException($"agent answer is larger than {MaxResponseBytes} bytes");
            }

            output.Write(buffer, 0, read);
        }

        return output.ToArray();
    }

    private static string Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new DstackAgentException($"agent answer lacks the string member '{name}'");

    private static byte[] Hex(JsonElement root, string name) => ParseHex(Text(root, name), name);

    private static byte[] ParseHex(string text, string name)
    {
        var span = text.AsSpan();
        if (span.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            span = span[2..];
        }

        try
        {
            return Convert.FromHexString(span);
        }
        catch (FormatException e)
        {
            throw new DstackAgentException($"agent answer member '{name}' is not hex", null, e);
        }
    }
}
