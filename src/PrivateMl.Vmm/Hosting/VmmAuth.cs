using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace PrivateMl.Vmm.Hosting;

/// <summary>
/// dstack-vmm's API tokens (<c>[auth] enabled, tokens</c>): a request carries one as <c>Authorization: Bearer</c>
/// (what vmm-cli's <c>--token</c> / <c>DSTACK_VMM_TOKEN</c> sends), as dstack's <c>X-Admin-Token</c> header, as the
/// password (or a password-less user) of HTTP Basic, or — for GET only, so a logs link works — as <c>?token=</c>.
/// Tokens are compared as SHA-256 digests with a constant-time compare against every configured token, so neither
/// the length nor the content of a token leaks through timing.
/// </summary>
public sealed class VmmAuth
{
    public const string Realm = "dstack-vmm API";

    private readonly byte[][] digests;

    public VmmAuth(VmmAuthOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Enabled = options.Enabled;
        digests = options.Tokens.Where(t => !string.IsNullOrEmpty(t)).Select(t => SHA256.HashData(Encoding.UTF8.GetBytes(t))).ToArray();
        if (Enabled && digests.Length == 0)
        {
            throw VmmException.Invalid("auth.enabled is true but auth.tokens lists no token: nobody could use the service");
        }
    }

    public bool Enabled { get; }

    public int TokenCount => digests.Length;

    /// <summary>Whether <paramref name="candidate"/> is one of the tokens (always compares against all of them).</summary>
    public bool Verify(string? candidate)
    {
        if (candidate is null)
        {
            return false;
        }

        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(candidate));
        var match = false;
        foreach (var expected in digests)
        {
            match |= CryptographicOperations.FixedTimeEquals(digest, expected);
        }

        return match;
    }

    /// <summary>Whether the request may proceed: auth off, a valid token, or a guest's host-API call over loopback.</summary>
    public bool Allows(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!Enabled)
        {
            return true;
        }

        var request = context.Request;
        if (IsGuestHostApi(request.Path) && context.Connection.RemoteIpAddress is { } remote && IPAddress.IsLoopback(remote))
        {
            // dstack serves the guests' host API on a separate vsock listener that [auth] does not cover; our development
            // guests reach it through QEMU user networking, whose connections come from the host's loopback.
            return true;
        }

        if (request.Headers.Authorization.ToString() is { Length: > 0 } authorization)
        {
            if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                return Verify(authorization[7..].Trim());
            }

            if (authorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
            {
                return DecodeBasic(authorization[6..].Trim()) is var (user, password)
                    && (Verify(password) || (password.Length == 0 && Verify(user)));
            }

            return false;
        }

        if (request.Headers["X-Admin-Token"].ToString() is { Length: > 0 } adminToken)
        {
            return Verify(adminToken);
        }

        return HttpMethods.IsGet(request.Method) && request.Query["token"].ToString() is { Length: > 0 } queryToken && Verify(queryToken);
    }

    /// <summary>401 with dstack's realm and a JSON error body, as every other refusal of the service.</summary>
    public static async Task RefuseAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var body = VmmJson.Error("unauthorized: this VMM requires an API token (vmm --token or DSTACK_VMM_TOKEN)");
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = $"Bearer realm=\"{Realm}\"";
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>
    /// Whether a listener address stays on this host: a loopback IP, <c>localhost</c>, or a Unix socket. Anything else
    /// (0.0.0.0, *, a routable address, a host name) is treated as reachable from elsewhere.
    /// </summary>
    public static bool IsLoopbackAddress(string address)
    {
        if (string.IsNullOrEmpty(address))
        {
            return false;
        }

        if (address.StartsWith("unix:", StringComparison.OrdinalIgnoreCase) || address.StartsWith("http://unix:", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
        {
            return false;
        }

        var host = uri.Host.Trim('[', ']');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>The one line <c>serve</c> prints about auth.</summary>
    public static string Describe(VmmOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Auth.Enabled)
        {
            var count = options.Auth.Tokens.Count(t => t.Length > 0);
            return $"auth: enabled ({count} token{(count == 1 ? "" : "s")}); clients send Authorization: Bearer <token> (vmm --token / DSTACK_VMM_TOKEN)";
        }

        return IsLoopbackAddress(options.Address)
            ? $"auth: disabled — listening on loopback only ({options.Address}); anyone on this host can drive it. Set auth.enabled and auth.tokens to listen beyond this host"
            : $"WARNING: auth: disabled and listening on {options.Address} (auth.allow_public_without_auth): the whole VM control surface is open to the network";
    }

    /// <summary>Refuses a configuration that would expose the service without auth (dstack only warns).</summary>
    public static void CheckExposure(VmmOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!options.Auth.Enabled && !options.Auth.AllowPublicWithoutAuth && !IsLoopbackAddress(options.Address))
        {
            throw VmmException.Invalid(
                $"refusing to listen on {options.Address} without auth: set auth.enabled with auth.tokens, bind to 127.0.0.1, " +
                "or set auth.allow_public_without_auth to accept an open control surface");
        }
    }

    private static bool IsGuestHostApi(PathString path)
    {
        var value = path.Value ?? "";
        if (value.StartsWith("/api/", StringComparison.Ordinal))
        {
            return true;
        }

        // /vm/<id>/api/<method>
        var parts = value.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length == 4 && parts[0] == "vm" && parts[2] == "api";
    }

    private static (string User, string Password)? DecodeBasic(string encoded)
    {
        if (encoded.Length > 4096)
        {
            return null;
        }

        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? null : (text[..colon], text[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
