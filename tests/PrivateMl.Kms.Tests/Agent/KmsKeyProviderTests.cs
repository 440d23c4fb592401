using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PrivateMl.Agent;
using PrivateMl.Agent.Hosting;
using PrivateMl.Agent.Keys;
using PrivateMl.Agent.Runtime;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Kms.Keys;
using PrivateMl.Kms.Tests.Support;
using PrivateMl.Testing;

namespace PrivateMl.Kms.Tests.Agent;

/// <summary>The simulated guest agent with key provider <c>kms</c> gets its app keys from a KMS at start, over RA-TLS.</summary>
public sealed class KmsKeyProviderTests
{
    [Fact]
    public async Task Agent_BootsWithKmsKeys_AndMeasuresTheKmsAsKeyProvider()
    {
        await using var bed = await KmsTestbed.StartAsync();
        await using var agent = GuestAgentHost.BuildSimulated(AgentOptionsFor(bed), out var device, bed.Clock, configureLogging: l => l.SetMinimumLevel(LogLevel.Warning));
        using (device)
        {
            await agent.StartAsync(TestContext.Current.CancellationToken);
            var runtime = agent.Services.GetRequiredService<AgentRuntime>();
            var identity = DstackAppIdentity.FromEventLog(runtime.EventLog.GetEvents());
            Assert.IsType<KmsKeyProvider>(agent.Services.GetRequiredService<IKeyProvider>());

            using var roots = KmsRootKeys.Open(bed.StateDirectory);
            Assert.Equal(roots.KeyProviderInfo, identity.KeyProviderInfo);
            Assert.Equal("kms", identity.KeyProviderName);
            using var expected = roots.DeriveAppKeys(identity.AppId!.Value.Span, identity.InstanceId!.Value.Span, 1);
            Assert.Equal(Secp256k1.CompressedPublicKey(expected.K256Key), runtime.AppKeys.K256PublicKey.ToArray());
            Assert.Equal(expected.K256Signature, runtime.AppKeys.K256Signature.ToArray());
            Assert.Equal(expected.DiskCryptKey, runtime.AppKeys.DiskCryptKey.ToArray());
            Assert.Equal(Encoding.UTF8.GetString(runtime.AppKeys.AppId.Span.ToArray()), Encoding.UTF8.GetString(identity.AppId.Value.Span.ToArray()));
            await agent.StopAsync(TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task Agent_FailsToStart_WhenTheKmsRefuses()
    {
        await using var bed = await KmsTestbed.StartAsync(new PrivateMl.Kms.Policy.KmsPolicy { AppIds = [] });
        await using var agent = GuestAgentHost.BuildSimulated(AgentOptionsFor(bed), out var device, bed.Clock, configureLogging: l => l.SetMinimumLevel(LogLevel.Critical));
        using (device)
        {
            var e = await Assert.ThrowsAsync<KmsClientException>(() => agent.StartAsync(TestContext.Current.CancellationToken));
            Assert.Equal("KmsAppNotAllowed", e.RefusalCode);
        }
    }

    /// <summary>A simulated guest agent on a free loopback port, no sockets, its state beside the KMS's, key provider that KMS.</summary>
    private static AgentOptions AgentOptionsFor(KmsTestbed bed) => new()
    {
        SocketPath = null,
        TappdSocketPath = null,
        ListenUrl = new Uri($"http://127.0.0.1:{FreePort.OnLoopback()}"),
        StateDirectory = bed.Directory,
        KmsUrl = bed.Url,
    };
}
