namespace PrivateMl.Agent.Protocol;

/// <summary>A request the agent refuses: becomes a 4xx response with body <c>{"error": Message}</c>.</summary>
internal sealed class RpcException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    public static RpcException BadRequest(string message) => new(400, message);
}
