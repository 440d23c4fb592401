using PrivateMl.Inference.Upstream;

namespace PrivateMl.Inference.Tests.Upstream;

/// <summary>
/// The socket backend through the shared upstream contract, against Kestrel; its framing and connection handling
/// against a scripted peer are in <see cref="Http11SocketBackendTests"/>.
/// </summary>
public sealed class Http11SocketBackendContractTests : UpstreamBackendContract
{
    protected override IInferenceBackend CreateBackend(UpstreamHttpBackendOptions options) => new Http11SocketBackend(options);
}
