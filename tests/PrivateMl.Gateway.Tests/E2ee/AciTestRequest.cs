using System.Globalization;
using System.Security.Cryptography;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.E2ee;

/// <summary>An ACI E2EE v2 request as a client builds it: fresh client key and nonce, encrypted fields, the five headers.</summary>
internal sealed record AciTestRequest(byte[] Body, Dictionary<string, string> Headers, AciExchangeContext Context, AciPrivateKey ClientKey)
{
    public static AciTestRequest Create(WorkloadKeyset keyset, AciSuite suite, string model, bool stream, string prompt, string path = AciPayload.ChatEndpoint, DateTimeOffset? at = null)
    {
        var service = keyset.E2eePublicKeys.First(k => k.Algo == suite.Algo());
        var clientKey = AciPrivateKey.Create(suite);
        var context = new AciExchangeContext(suite, model, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), (at ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds());
        var body = AciPayload.ParseBody(GatewayFixture.ChatBody(model, stream, prompt), out _)!;
        if (path == AciPayload.CompletionsEndpoint)
        {
            body.Remove("messages");
            body["prompt"] = prompt;
        }

        AciPayload.EncryptRequest(body, path, context, suite.ParsePublicKey(service.PublicKey));
        var headers = new Dictionary<string, string>
        {
            [AciHeaders.Version] = "2",
            [AciHeaders.ClientPublicKey] = clientKey.PublicKeyHex,
            [AciHeaders.ModelPublicKey] = service.PublicKey,
            [AciHeaders.Nonce] = context.Nonce,
            [AciHeaders.Timestamp] = context.Timestamp.ToString(CultureInfo.InvariantCulture),
        };
        return new AciTestRequest(AciPayload.Serialize(body), headers, context, clientKey);
    }

    /// <summary>Puts the E2EE headers on <paramref name="request"/>.</summary>
    public void AddHeaders(HttpRequestMessage request)
    {
        foreach (var (k, v) in Headers)
        {
            request.Headers.TryAddWithoutValidation(k, v);
        }
    }
}
