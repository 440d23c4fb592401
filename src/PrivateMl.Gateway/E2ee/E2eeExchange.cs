using System.Buffers;
using Microsoft.AspNetCore.Http;

namespace PrivateMl.Gateway.E2ee;

/// <summary>
/// One end-to-end encrypted completion exchange, put on <c>HttpContext.Features</c> by an E2EE middleware (ACI E2EE v2,
/// EHBP) after it has checked the request's headers. The completion relay then reads the exact wire body (bounded),
/// hashes and signs those bytes (ciphertext included), forwards <see cref="OpenRequest"/>'s plaintext to the model, and
/// sends the model's answer through <see cref="CreateResponseTransform"/>, hashing and signing the transformed bytes.
/// A request that asked for E2EE never reaches the model as anything but the output of <see cref="OpenRequest"/>.
/// </summary>
public interface IE2eeExchange
{
    /// <summary>Short name for logs and metrics (<c>aci-v2</c>, <c>ehbp</c>).</summary>
    string Name { get; }

    /// <summary>
    /// The body to forward to the model, decrypted from the exact bytes the client sent (ACI also claims its replay
    /// triple here, possibly in a shared store). Throws <see cref="E2eeRefusedException"/> (fail closed: the relay
    /// answers with its error and forwards nothing).
    /// </summary>
    ValueTask<byte[]> OpenRequestAsync(byte[] wireBody, string path, CancellationToken cancellationToken);

    /// <summary>Adds the E2EE response headers; called for a successful (2xx) relay only, before the body starts.</summary>
    void ApplyResponseHeaders(HttpResponse response);

    /// <summary>The transform for the model's 2xx response body.</summary>
    IResponseBodyTransform CreateResponseTransform(bool eventStream);

    /// <summary>
    /// The body to send for an error answered on this exchange (<paramref name="errorBody"/>, in OpenAI error shape;
    /// the status and <c>Content-Type</c> are set, <c>Content-Length</c> is its length): the model's non-2xx answer
    /// (<paramref name="fromModel"/>) or the gateway's own (429, 413, 502 …). EHBP seals both under the response key and
    /// sets its headers (SPEC §5.1–5.2: a server encrypts errors whenever a receiver context exists). ACI v2 defines no
    /// encrypted error: the gateway's own pass unchanged, and a model error becomes a typed error whose text is not the
    /// model's (it may quote the decrypted prompt).
    /// </summary>
    byte[] SealError(byte[] errorBody, HttpResponse response, bool fromModel);
}

/// <summary>
/// Turns the model's response bytes into the bytes sent to the client, in order. It may buffer (e.g. until an SSE event
/// or the whole JSON body is complete). Throwing <see cref="E2eeRefusedException"/> (or any exception) makes the relay
/// abort the response unsigned: nothing more, in particular no plaintext, is sent.
/// </summary>
public interface IResponseBodyTransform
{
    /// <summary>Consumes upstream bytes and writes whatever is ready to send.</summary>
    void Transform(ReadOnlySpan<byte> upstream, IBufferWriter<byte> output);

    /// <summary>The upstream body ended: writes what is left.</summary>
    void Complete(IBufferWriter<byte> output);
}

/// <summary>A refused E2EE request or response: the HTTP answer to give and a stable code (never plaintext or key material).</summary>
public sealed class E2eeRefusedException(int status, string contentType, byte[] body, string code, string message) : Exception(message)
{
    public int Status { get; } = status;

    public string ContentType { get; } = contentType;

    public byte[] Body { get; } = body;

    /// <summary>The protocol's error code (<c>e2ee_replay_detected</c>, <c>urn:ietf:params:ehbp:error:key-config</c>, …).</summary>
    public string Code { get; } = code;

    /// <summary>Writes the refusal.</summary>
    public Task WriteAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = Status;
        context.Response.ContentType = ContentType;
        context.Response.ContentLength = Body.Length;
        return context.Response.Body.WriteAsync(Body, context.RequestAborted).AsTask();
    }
}
