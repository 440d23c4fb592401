using PrivateMl.Inference.Upstream;

namespace PrivateMl.Inference.Tests.Upstream;

/// <summary>The HttpClient-based upstream backend through the shared upstream contract.</summary>
public sealed class UpstreamHttpBackendTests : UpstreamBackendContract
{
    protected override IInferenceBackend CreateBackend(UpstreamHttpBackendOptions options) => new UpstreamHttpBackend(options);
}
