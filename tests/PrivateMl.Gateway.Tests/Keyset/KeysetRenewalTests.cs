using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using PrivateMl.E2ee.Aci;
using PrivateMl.Gateway.Keyset;
using PrivateMl.Gateway.Tests.E2ee;
using PrivateMl.Gateway.Tests.Support;

namespace PrivateMl.Gateway.Tests.Keyset;

/// <summary>
/// A gateway that runs longer than its keyset's lifetime renews the keyset (same keys, later <c>not_after</c>) instead
/// of letting it expire, which would make it refuse every E2EE request and verifiers reject its reports.
/// </summary>
public sealed class KeysetRenewalTests
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromDays(30);

    [Fact]
    public async Task The_keyset_is_renewed_with_the_same_keys_and_old_clients_keep_working_past_the_first_expiry()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var start = clock.GetUtcNow();
        await using var node = await GatewayFixture.StartAsync(o => o.KeysetLifetime = Lifetime, s => s.AddSingleton<TimeProvider>(clock));
        var holder = node.Gateway.Services.GetRequiredService<GatewayKeysetHolder>();
        var attested = await ReportedKeysetAsync(node);
        Assert.Equal((start + Lifetime).ToUnixTimeSeconds(), attested.NotAfter);

        // Day 19, then day 21: a third of the lifetime is left from day 20.
        clock.Advance(TimeSpan.FromDays(19));
        clock.Advance(TimeSpan.FromDays(2));
        await WaitForAsync(() => holder.Keyset.Public.Digest != attested.Digest);
        var renewed = await ReportedKeysetAsync(node);

        Assert.Equal(holder.Keyset.Public.Digest, renewed.Digest);
        Assert.Equal((clock.GetUtcNow() + Lifetime).ToUnixTimeSeconds(), renewed.NotAfter);
        Assert.Equal(Keys(attested.E2eePublicKeys), Keys(renewed.E2eePublicKeys));
        Assert.Equal(Keys(attested.ReceiptSigningKeys), Keys(renewed.ReceiptSigningKeys));
        Assert.Equal(attested.TlsPublicKeys.Count, renewed.TlsPublicKeys.Count);

        // Day 31: past the first not_after. A client that attested the first keyset still gets answers.
        clock.Advance(TimeSpan.FromDays(10));
        Assert.True(attested.IsExpired(clock.GetUtcNow()));
        var request = AciTestRequest.Create(attested, AciSuite.X25519, "test-model", stream: false, "still here?", at: clock.GetUtcNow());
        var exchange = await node.PostAsync("/v1/chat/completions", request.Body, request.AddHeaders);
        Assert.Equal(200, exchange.Status);
    }

    [Theory]
    [InlineData(30 * 24, 20 * 24)]
    [InlineData(3, 2)]
    public void Renewal_is_due_when_a_third_of_the_lifetime_is_left(int lifetimeHours, int dueAfterHours)
    {
        var issued = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        var lifetime = TimeSpan.FromHours(lifetimeHours);

        var due = KeysetRenewal.RenewalDue((issued + lifetime).ToUnixTimeSeconds(), lifetime);

        Assert.Equal(issued + TimeSpan.FromHours(dueAfterHours), due);
    }

    [Fact]
    public void A_lifetime_under_a_minute_is_refused()
    {
        var options = new GatewayOptions { KeysetLifetime = TimeSpan.FromSeconds(59) };

        Assert.Throws<ArgumentException>(options.Validate);
    }

    private static async Task<WorkloadKeyset> ReportedKeysetAsync(GatewayFixture node)
    {
        var (status, report) = await node.GetJsonAsync("/v1/attestation/report?format=aci");
        Assert.Equal(200, status);
        return WorkloadKeyset.Parse(report.GetProperty("attestation").GetProperty("workload_keyset"));
    }

    private static string[] Keys(IEnumerable<KeysetKey> keys) => [.. keys.Select(k => $"{k.KeyId} {k.Algo} {k.PublicKey}")];

    /// <summary>Polls; a minute without the condition fails the test rather than hanging the run.</summary>
    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        limit.CancelAfter(TimeSpan.FromMinutes(1));
        while (!condition())
        {
            await Task.Delay(10, limit.Token);
        }
    }
}
