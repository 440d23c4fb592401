using Microsoft.Extensions.Logging;
using PrivateMl.Inference;

namespace PrivateMl.Gateway.Operations;

/// <summary>
/// Whether the model behind the gateway answers, for <c>/ready</c>: a gateway in front of a vLLM that is still loading
/// its weights (minutes) or has died must not be put in rotation. The backend's <c>GET /v1/models</c> (which every
/// OpenAI-compatible server has) is asked at most once per <see cref="GatewayOptions.ReadinessProbeInterval"/>;
/// concurrent probes of the readiness endpoint share one upstream request, so a busy prober cannot load the model
/// server.
/// </summary>
internal sealed class UpstreamReadiness(IInferenceBackend backend, GatewayOptions options, TimeProvider time, ILogger<UpstreamReadiness> logger)
{
    private readonly Lock _gate = new();
    private Task<bool>? _probe;
    private long _probedAt;
    private int _lastState; // 0 unknown, 1 up, 2 down: each change is logged once, with why when it went down

    public Task<bool> IsUpAsync()
    {
        lock (_gate)
        {
            var now = time.GetTimestamp();
            if (_probe is null || (_probe.IsCompleted && time.GetElapsedTime(_probedAt, now) >= options.ReadinessProbeInterval))
            {
                _probedAt = now;
                _probe = ProbeAsync();
            }

            return _probe;
        }
    }

    private async Task<bool> ProbeAsync()
    {
        using var timeout = new CancellationTokenSource(options.ReadinessProbeTimeout, time);
        string? failure;
        try
        {
            await using var response = await backend.SendAsync(new BackendRequest(HttpMethod.Get, "/v1/models", ReadOnlyMemory<byte>.Empty, null), timeout.Token);
            failure = response.StatusCode is >= 200 and < 300 ? null : $"GET /v1/models answered {response.StatusCode}";
        }
        catch (Exception e) when (e is BackendUnavailableException or OperationCanceledException or IOException or HttpRequestException)
        {
            failure = e is OperationCanceledException ? $"no answer to GET /v1/models within {options.ReadinessProbeTimeout.TotalSeconds:0.#} s" : e.Message;
        }

        if (Interlocked.Exchange(ref _lastState, failure is null ? 1 : 2) != (failure is null ? 1 : 2))
        {
            if (failure is null)
            {
                GatewayLog.ModelAnswers(logger);
            }
            else
            {
                GatewayLog.ModelUnavailable(logger, failure);
            }
        }

        return failure is null;
    }
}
