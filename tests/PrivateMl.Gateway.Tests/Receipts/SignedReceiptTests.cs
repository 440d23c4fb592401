using System.Security.Cryptography;
using System.Text.Json.Nodes;
using PrivateMl.Gateway.Receipts;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Tests.Receipts;

public sealed class SignedReceiptTests
{
    [Theory]
    [InlineData("chatcmpl-1", "model-a")]
    [InlineData(null, null)]
    [InlineData("id \"quoted\" \\ ü", "mödel/with\nnewline")]
    public void DirectWriter_ProducesTheCanonicalForm_AndTheReceiptVerifies(string? chatId, string? model)
    {
        using var keys = GatewaySigningKeys.CreateRandom(RandomNumberGenerator.Create());
        var ecdsa = keys.EcdsaKey.PersonalSign(new string('a', 64) + ":" + new string('b', 64));

        var receipt = SignedReceipt.Create(keys, "pml-1", chatId, model, "/v1/chat/completions",
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123), DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_456),
            new string('a', 64), new string('b', 64), ecdsa);

        Assert.Equal(receipt, System.Text.Encoding.UTF8.GetString(CanonicalJson.Serialize(JsonNode.Parse(receipt))));
        var verified = SignedReceipt.Verify(receipt, keys.Ed25519Key.Address);
        Assert.True(verified.Valid, verified.Reason);
        Assert.Equal(keys.EcdsaKey.Address, verified.EcdsaAddress);

        // Re-serialised differently (indented, reordered) it still verifies: the signature is over the canonical form.
        var node = JsonNode.Parse(receipt)!.AsObject();
        var reordered = new JsonObject(node.Reverse().Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone())));
        Assert.True(SignedReceipt.Verify(reordered.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true })).Valid);
    }

    [Theory]
    [InlineData("request_sha256")]
    [InlineData("response_sha256")]
    [InlineData("completed_at_ms")]
    [InlineData("chat_id")]
    [InlineData("signature")]
    public void Rejects_AReceiptWithOneFieldChanged(string field)
    {
        using var keys = GatewaySigningKeys.CreateRandom(RandomNumberGenerator.Create());
        var text = new string('a', 64) + ":" + new string('b', 64);
        var receipt = SignedReceipt.Create(keys, "pml-1", "chatcmpl-1", "m", "/v1/chat/completions", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch,
            new string('a', 64), new string('b', 64), keys.EcdsaKey.PersonalSign(text));
        var node = JsonNode.Parse(receipt)!.AsObject();
        node[field] = node[field]!.GetValueKind() == System.Text.Json.JsonValueKind.Number ? JsonValue.Create(1L) : JsonValue.Create(new string('c', 64));

        Assert.False(SignedReceipt.Verify(node.ToJsonString()).Valid);
    }
}
