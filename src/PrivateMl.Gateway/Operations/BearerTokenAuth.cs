using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// Bearer tokens compared in constant time: each presented token is hashed (SHA-256, so lengths never leak) and
/// compared with every configured token's hash with <see cref="CryptographicOperations.FixedTimeEquals"/>.
/// </summary>
internal sealed class BearerTokenAuth
{
    private readonly byte[][] _tokenHashes;

    public BearerTokenAuth(IReadOnlyList<string> tokens) =>
        _tokenHashes = tokens.Select(t => SHA256.HashData(Encoding.UTF8.GetBytes(t))).ToArray();

    public bool Enabled => _tokenHashes.Length > 0;

    public bool IsAuthorized(string? authorizationHeader)
    {
        if (!Enabled)
        {
            return true;
        }

        if (authorizationHeader is null || !authorizationHeader.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Span<byte> presented = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(authorizationHeader.AsSpan(7).Trim().ToString()), presented);
        var match = false;
        foreach (var hash in _tokenHashes)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, hash);
        }

        return match;
    }
}
