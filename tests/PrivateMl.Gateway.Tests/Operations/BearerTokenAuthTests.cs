using System.Text;
using PrivateMl.Gateway.Operations;

namespace PrivateMl.Gateway.Tests.Operations;

/// <summary>The bearer-token check in both of its modes: padded blocks (a few short tokens) and lookup by hash.</summary>
public sealed class BearerTokenAuthTests
{
    public static TheoryData<string, bool> Configurations => new()
    {
        { "few-short", true },
        { "many", false },
        { "one-long", false },
    };

    private static string[] TokensOf(string configuration) => configuration switch
    {
        "few-short" => ["sk-alpha-0123456789", "sk-beta-ß∂-ünïcode", new string('x', BearerTokenAuth.PaddedTokenBytes)],
        "many" => [.. Enumerable.Range(0, BearerTokenAuth.MaxPaddedTokens + 1).Select(i => $"sk-token-{i:D3}")],
        "one-long" => ["sk-short", new string('y', BearerTokenAuth.PaddedTokenBytes + 1)],
        _ => throw new ArgumentOutOfRangeException(nameof(configuration)),
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Every_configured_token_is_accepted_with_its_credential(string configuration, bool padded)
    {
        var tokens = TokensOf(configuration);
        var auth = new BearerTokenAuth(tokens);
        Assert.Equal(padded, auth.ComparesPadded);

        foreach (var token in tokens)
        {
            Assert.True(auth.TryAuthorize("Bearer " + token, out var credential), token);
            Assert.Equal(BearerTokenAuth.CredentialHashOf(Encoding.UTF8.GetBytes(token)), credential!.Hash);
        }
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Near_misses_are_refused_without_a_credential(string configuration, bool padded)
    {
        var token = TokensOf(configuration)[0];
        var auth = new BearerTokenAuth(TokensOf(configuration));
        Assert.Equal(padded, auth.ComparesPadded);
        string?[] refused =
        [
            null,
            "",
            "Bearer ",
            token,
            "Basic " + token,
            "Bearer " + token[..^1],
            "Bearer " + token + "z",
            "Bearer " + token + "\0",
            "Bearer " + token[..^1] + "~",
            "Bearer " + token.ToUpperInvariant(),
            "Bearer " + new string('x', BearerTokenAuth.PaddedTokenBytes + 1),
            "Bearer " + new string('x', 64 * 1024),
        ];

        foreach (var header in refused)
        {
            Assert.False(auth.TryAuthorize(header, out var credential), header);
            Assert.Null(credential);
        }
    }

    [Fact]
    public void The_scheme_is_case_insensitive_and_the_token_trimmed()
    {
        var auth = new BearerTokenAuth(["sk-alpha"]);

        Assert.True(auth.IsAuthorized("bearer sk-alpha"));
        Assert.True(auth.IsAuthorized("BEARER   sk-alpha \t"));
        Assert.False(auth.IsAuthorized("Bearer sk-alph a"));
    }

    [Fact]
    public void A_zero_padded_prefix_does_not_match_a_token_that_ends_in_zero_bytes()
    {
        // Padding is zeros: only the length tells "ab" from "ab\0".
        var auth = new BearerTokenAuth(["ab\0"]);
        Assert.True(auth.ComparesPadded);

        Assert.False(auth.IsAuthorized("Bearer ab"));
        Assert.True(auth.IsAuthorized("Bearer ab\0"));
    }

    [Fact]
    public void Without_tokens_everyone_passes_and_no_credential_is_made()
    {
        var auth = new BearerTokenAuth([]);

        Assert.False(auth.Enabled);
        Assert.True(auth.TryAuthorize(null, out var credential));
        Assert.Null(credential);
    }
}
