using System.Security.Cryptography;
using System.Text;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// Bearer tokens checked without leaking a configured token's content or length through timing. A few short tokens
/// (the usual deployment) are compared as zero-padded fixed-size blocks with <see cref="CryptographicOperations.FixedTimeEquals"/>:
/// no hash on the request's way upstream (a SHA-256 on a core that idled since the last token costs ~30 µs, a
/// tenth of the gateway's first-byte budget). Many or long tokens are looked up by their SHA-256 instead, which keeps
/// the check O(1) in the number of tokens; the lookup's timing then depends only on the presented token's hash.
/// </summary>
internal sealed class BearerTokenAuth
{
    /// <summary>The padded block size: every compare reads this many bytes, whatever the tokens' lengths.</summary>
    internal const int PaddedTokenBytes = 128;

    /// <summary>Above this many tokens a compare against every one costs more than one hash: look up by hash.</summary>
    internal const int MaxPaddedTokens = 16;

    private readonly PaddedToken[]? _padded;
    private readonly HashSet<TokenDigest>? _digests;

    public BearerTokenAuth(IReadOnlyList<string> tokens)
    {
        var encoded = tokens.Select(Encoding.UTF8.GetBytes).ToArray();
        Enabled = encoded.Length > 0;
        if (encoded.Length <= MaxPaddedTokens && encoded.All(t => t.Length <= PaddedTokenBytes))
        {
            _padded = [.. encoded.Select(t => new PaddedToken(t))];
        }
        else
        {
            _digests = [.. encoded.Select(t => TokenDigest.Of(t))];
        }
    }

    public bool Enabled { get; }

    /// <summary>Whether the tokens are compared padded (true) or looked up by hash (false); for tests.</summary>
    internal bool ComparesPadded => _padded is not null;

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

        var presented = authorizationHeader.AsSpan(7).Trim();
        var match = _padded is not null ? MatchesPadded(presented, out var token) : MatchesDigest(presented, out token);
        if (match)
        {
            credential = new CallerCredential(token!);
        }

        return match;
    }

    private bool MatchesPadded(ReadOnlySpan<char> presented, out byte[]? token)
    {
        token = null;
        Span<byte> block = stackalloc byte[PaddedTokenBytes];
        block.Clear();

        // Longer than the block: no configured token can be that long. Rejecting it early tells a caller only that its
        // token is longer than the public bound, nothing about the tokens.
        if (!Encoding.UTF8.TryGetBytes(presented, block, out var length))
        {
            return false;
        }

        var match = false;
        foreach (var configured in _padded!)
        {
            match |= configured.Matches(block, length);
        }

        if (match)
        {
            token = block[..length].ToArray();
        }

        return match;
    }

    private bool MatchesDigest(ReadOnlySpan<char> presented, out byte[]? token)
    {
        // The header is bounded by the server's request-header limit before it gets here.
        var bytes = new byte[Encoding.UTF8.GetByteCount(presented)];
        Encoding.UTF8.GetBytes(presented, bytes);
        token = _digests!.Contains(TokenDigest.Of(bytes)) ? bytes : null;
        return token is not null;
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

    /// <summary>A configured token zero-padded to <see cref="PaddedTokenBytes"/>, with its length.</summary>
    private sealed class PaddedToken
    {
        private readonly byte[] _block = new byte[PaddedTokenBytes];
        private readonly int _length;

        public PaddedToken(byte[] token)
        {
            token.CopyTo(_block, 0);
            _length = token.Length;
        }

        /// <summary>Reads every byte of both blocks whatever they hold; the length is compared without a branch.</summary>
        public bool Matches(ReadOnlySpan<byte> block, int length) =>
            CryptographicOperations.FixedTimeEquals(block, _block) & (length == _length);
    }

    /// <summary>A token's SHA-256 as a value that a <see cref="HashSet{T}"/> can hold.</summary>
    private readonly record struct TokenDigest(UInt128 High, UInt128 Low)
    {
        public static TokenDigest Of(ReadOnlySpan<byte> token)
        {
            Span<byte> digest = stackalloc byte[32];
            SHA256.HashData(token, digest);
            return new TokenDigest(
                System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(digest),
                System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(digest[16..]));
        }
    }
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
