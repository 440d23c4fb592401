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

    public bool IsAuthorized(string? authorizationHeader) => TryAuthorize(authorizationHeader, out _);

    /// <summary>
    /// Checks the header; when auth is on and the token is known, <paramref name="credential"/> is the caller whose
    /// signatures are stored with its hash (<see cref="CredentialHashOf"/>); null when auth is off or the token is
    /// missing or unknown.
    /// </summary>
    public bool TryAuthorize(string? authorizationHeader, out CallerCredential? credential)
    {
        credential = null;
        if (!Enabled)
        {
            return true;
        }

        if (authorizationHeader is null || !authorizationHeader.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var token = Encoding.UTF8.GetBytes(authorizationHeader.AsSpan(7).Trim().ToString());
        Span<byte> presented = stackalloc byte[32];
        SHA256.HashData(token, presented);
        var match = false;
        foreach (var hash in _tokenHashes)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, hash);
        }

        if (match)
        {
            credential = new CallerCredential(token);
        }

        return match;
    }

    /// <summary>
    /// What is stored beside a signature to tie it to its caller: hex SHA-256 over a domain prefix and the token, the
    /// same on every gateway of a fleet (so any instance can check it), never the token itself.
    /// </summary>
    internal static string CredentialHashOf(ReadOnlySpan<byte> token)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(CredentialDomain);
        hash.AppendData(token);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static ReadOnlySpan<byte> CredentialDomain => "privateml-gateway-credential\0"u8;
}

/// <summary>
/// The request's authenticated credential, set by the auth middleware when auth is on. Its hash is made when first
/// asked for — by the relay while the upstream works, not on the request's way there.
/// </summary>
internal sealed class CallerCredential(byte[] token)
{
    private string? _hash;

    public string Hash => _hash ??= BearerTokenAuth.CredentialHashOf(token);
}
