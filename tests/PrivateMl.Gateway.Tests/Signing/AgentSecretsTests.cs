using PrivateMl.Agent.Client;
using PrivateMl.Gateway.Signing;

namespace PrivateMl.Gateway.Tests.Signing;

/// <summary>The agent-derived secrets behind the signing keys and the keyset's E2EE keys.</summary>
public sealed class AgentSecretsTests
{
    [Fact]
    public async Task Derive_TakesTheFirst32Bytes_AndClearsTheAgentsAnswer()
    {
        var answer = Enumerable.Range(1, 64).Select(i => (byte)i).ToArray();
        var agent = new OneKeyAgent(answer);

        var secret = await AgentSecrets.DeriveAsync(agent, "gw/ecdsa-signing-key", "signing", TestContext.Current.CancellationToken);

        Assert.Equal(Enumerable.Range(1, 32).Select(i => (byte)i), secret);
        Assert.Equal(("gw/ecdsa-signing-key", "signing", "secp256k1"), agent.Asked);
        Assert.All(answer, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Derive_RefusesAShortKey_AndClearsIt()
    {
        var answer = Enumerable.Repeat((byte)7, 31).ToArray();

        await Assert.ThrowsAsync<DstackAgentException>(() => AgentSecrets.DeriveAsync(new OneKeyAgent(answer), "p", "e2ee", TestContext.Current.CancellationToken));
        Assert.All(answer, b => Assert.Equal(0, b));
    }

    private sealed class OneKeyAgent(byte[] key) : IDstackAgentClient
    {
        public (string Path, string Purpose, string Algorithm)? Asked { get; private set; }

        public Task<DstackKey> GetKeyAsync(string path, string purpose, string algorithm, CancellationToken cancellationToken)
        {
            Asked = (path, purpose, algorithm);
            return Task.FromResult(new DstackKey(key, []));
        }

        public Task<DstackQuote> GetQuoteAsync(ReadOnlyMemory<byte> reportData, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<string> InfoAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task EmitEventAsync(string eventName, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
