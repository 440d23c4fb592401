using PrivateMl.Attestation.Verification;
using PrivateMl.E2ee.Ehbp;

namespace PrivateMl.Client.E2ee.Ehbp;

/// <summary>
/// A <see cref="VerifiedChat"/> whose requests and answers travel under EHBP, encrypted to the HPKE key of the keyset
/// attested in this run. Typical use (after <see cref="NodeVerifier"/> with <c>ReportFormat = NodeReportFormat.Aci</c>):
/// <code>
/// using var ehbp = await EhbpChatTransport.ConnectAsync(attestation, baseAddress, apiKey, cancellationToken: ct);
/// var answer = await ehbp.Chat.SendAsync(body, attestation.SigningAddress!, "ed25519", onDelta, ct);
/// </code>
/// </summary>
public sealed class EhbpChatTransport : IDisposable
{
    private EhbpChatTransport(HttpClient http, VerifiedChat chat)
    {
        Http = http;
        Chat = chat;
    }

    /// <summary>An HTTP client whose bodies are EHBP-encrypted (bodyless requests go out in plaintext, as EHBP specifies).</summary>
    public HttpClient Http { get; }

    public VerifiedChat Chat { get; }

    /// <summary>
    /// Refuses unless <paramref name="attestation"/> is trusted and carries a keyset bound to this run's nonce with an
    /// EHBP key (<see cref="ErrorCode.EhbpKeyNotAttested"/>), and the node's <c>/.well-known/hpke-keys</c> serves that key
    /// (<see cref="ErrorCode.EhbpKeyMismatch"/>).
    /// </summary>
    public static async Task<EhbpChatTransport> ConnectAsync(
        NodeVerificationResult attestation, Uri baseAddress, string? apiKey, HttpMessageHandler? innerHandler = null, EhbpClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(attestation);
        if (!attestation.Trusted || attestation.Keyset is null)
        {
            throw new AttestationException(ErrorCode.EhbpKeyNotAttested, "the node's keyset was not attested in this run (verify it with the ACI report format first)");
        }

        var handler = await EhbpHandler.ConnectAsync(attestation.Keyset, baseAddress, innerHandler ?? new SocketsHttpHandler(), options, cancellationToken).ConfigureAwait(false);
        var http = new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(10) };
        return new EhbpChatTransport(http, new VerifiedChat(http, baseAddress, apiKey));
    }

    public void Dispose() => Http.Dispose();
}
