using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using PrivateMl.Attestation.EventLog;
using PrivateMl.Attestation.Tdx;
using PrivateMl.Attestation.Tdx.Collateral;
using PrivateMl.Attestation.Verification;
using PrivateMl.Collateral;
using PrivateMl.Tee.Simulator;
using PrivateMl.Testing;

namespace PrivateMl.Client.Tests.Support;

/// <summary>What a hostile node does wrong (each maps to one named check).</summary>
internal sealed record SeedDefects
{
    public static SeedDefects None { get; } = new();

    /// <summary>report_data[0..32) holds another address than the report's signing_address.</summary>
    public bool UnboundKey { get; init; }

    /// <summary>The quote carries an old nonce instead of the one asked for (a replay).</summary>
    public bool ReplayedNonce { get; init; }

    /// <summary>The event log has an extra RTMR3 event the quote never measured.</summary>
    public bool ExtraRtmr3Event { get; init; }

    /// <summary>The quote is signed by a key other than the attestation key it carries.</summary>
    public bool QuoteSignedByOtherKey { get; init; }

    public bool DebugTd { get; init; }

    /// <summary>The platform's TCB level in the collateral has this status.</summary>
    public TcbStatus? PlatformStatus { get; init; }

    /// <summary>The node publishes a different app-compose.json than the one it measured.</summary>
    public bool PublishesOtherCompose { get; init; }

    /// <summary>The nvidia_payload string to send (null: none).</summary>
    public string? NvidiaPayload { get; init; }

    /// <summary>Answers with this HTTP status instead of a report.</summary>
    public int? HttpStatus { get; init; }

    /// <summary>Answers with these bytes instead of a report.</summary>
    public string? RawBody { get; init; }
}

/// <summary>
/// A node in the seed proxy's shape built by hand from the simulator, NOT through our gateway: every member of
/// <c>GET /v1/attestation/report</c> is written here field by field following e2ee-and-receipts.md §3.1 and dstack.md
/// §3.7/§4 — report_data = address right-padded to 32 ‖ nonce, dstack runtime events in RTMR3, Info with tcb_info.
/// Served by a real Kestrel server on loopback.
/// </summary>
internal sealed class SeedNode : IAsyncDisposable
{
    public const string Token = "seed-token";

    public static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static readonly byte[] AppCompose = Encoding.UTF8.GetBytes(
        "{\n    \"manifest_version\": 2,\n    \"name\": \"seed-vllm\",\n    \"runner\": \"docker-compose\",\n    \"docker_compose_file\": \"services:\\n  vllm:\\n    image: vllm/vllm-openai@sha256:0123\\n\",\n    \"kms_enabled\": false,\n    \"key_provider_id\": \"\"\n}");

    private static readonly IReadOnlyList<TdxEvent> BootEvents =
    [
        Boot(0, 0x80000001, "seed firmware config"),
        Boot(0, 0x00000004, "seed separator"),
        Boot(1, 0x80000003, "seed kernel"),
        Boot(2, 0x00000006, "seed cmdline"),
    ];

    private WebApplication? _app;

    public SeedNode(SeedDefects? defects = null, DateTimeOffset? at = null)
    {
        Defects = defects ?? SeedDefects.None;
        At = at ?? Now;
        Clock = new ManualClock(At);
        var replay = RtmrReplay.Replay(BootEvents);
        var profile = new TdProfile
        {
            Rtmr0 = replay.Rtmr0.ToArray(),
            Rtmr1 = replay.Rtmr1.ToArray(),
            Rtmr2 = replay.Rtmr2.ToArray(),
        };
        ComposeHash = SHA256.HashData(AppCompose);
        profile = profile with { MrConfigId = MrConfigIdV1(ComposeHash) };
        Platform = SimulatedTdxPlatform.Create(new SimulatedPlatformOptions { Profile = profile }, At);
        SigningAddress = "0x" + Convert.ToHexString(RandomNumberGenerator.GetBytes(20));
    }

    public SeedDefects Defects { get; }

    public SimulatedTdxPlatform Platform { get; }

    public byte[] ComposeHash { get; }

    public string SigningAddress { get; }

    public Uri BaseAddress { get; private set; } = null!;

    public int ReportRequests { get; private set; }

    public byte[] AppId => ComposeHash[..20];

    public static byte[] InstanceId { get; } = Convert.FromHexString("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");

    public DateTimeOffset At { get; }

    public TimeProvider Clock { get; }

    /// <summary>Collateral for this node's platform (with the defect's TCB status, if any).</summary>
    public DcapCollateral Collateral() => Platform.CreateCollateral(At, Defects.PlatformStatus is { } status
        ? new SimulatedCollateralOptions { TcbInfo = new TcbInfoOptions { Levels = TcbInfoOptions.LevelsForPlatformStatus(status) } }
        : null);

    public ICollateralSource CollateralSource() => new FixedCollateral(Collateral());

    public NodeVerifierOptions Options(bool allowSimulated = true, byte[]? expectedCompose = null) => new()
    {
        AllowSimulated = allowSimulated,
        Collateral = CollateralSource(),
        ExpectedAppCompose = expectedCompose ?? AppCompose,
        ApiKey = Token,
        Time = Clock,
    };

    public IReadOnlyList<TdxEvent> RuntimeEvents()
    {
        var keyProvider = Encoding.UTF8.GetBytes("{\"name\":\"local-sgx\",\"id\":\"1b7a49d0a4f5c8b1\"}");
        return
        [
            TdxEvent.CreateRuntime(DstackEventNames.SystemPreparing, []),
            TdxEvent.CreateRuntime(DstackEventNames.AppId, AppId),
            TdxEvent.CreateRuntime(DstackEventNames.ComposeHash, ComposeHash),
            TdxEvent.CreateRuntime(DstackEventNames.InstanceId, InstanceId),
            TdxEvent.CreateRuntime(DstackEventNames.BootMrDone, []),
            TdxEvent.CreateRuntime(DstackEventNames.KeyProvider, keyProvider),
            TdxEvent.CreateRuntime(DstackEventNames.StorageFs, "zfs"u8),
            TdxEvent.CreateRuntime(DstackEventNames.SystemReady, []),
        ];
    }

    /// <summary>The report for <paramref name="nonce"/>, with this node's defects.</summary>
    public byte[] BuildReport(byte[] nonce)
    {
        var runtime = RuntimeEvents();
        var rtmr3 = RtmrReplay.Replay(runtime).Rtmr3.ToArray();
        var logged = BootEvents.Concat(runtime).ToList();
        if (Defects.ExtraRtmr3Event)
        {
            logged.Add(TdxEvent.CreateRuntime("app-event", "never measured"u8));
        }

        var reportData = new byte[64];
        var address = Convert.FromHexString(SigningAddress[2..]);
        (Defects.UnboundKey ? RandomNumberGenerator.GetBytes(20) : address).CopyTo(reportData, 0);
        (Defects.ReplayedNonce ? RandomNumberGenerator.GetBytes(32) : nonce).CopyTo(reportData, 32);
        var quoteDefects = new QuoteDefects
        {
            SignQuoteWithUnrelatedKey = Defects.QuoteSignedByOtherKey,
            BodyProfile = Defects.DebugTd ? Platform.Profile.WithDebug() : null,
        };
        var quote = Platform.CreateQuote(reportData, rtmr3, quoteDefects);

        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            WriteReport(w, nonce, reportData, quote, logged);
            w.WritePropertyName("all_attestations");
            w.WriteStartArray();
            w.WriteStartObject();
            WriteReport(w, nonce, reportData, quote, logged);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }

        return buffer.ToArray();
    }

    public async Task StartAsync()
    {
        var app = await LoopbackServer.StartAsync(server => server.MapGet("/v1/attestation/report", (HttpContext context) =>
        {
            ReportRequests++;
            if (context.Request.Headers.Authorization != $"Bearer {Token}")
            {
                return Results.StatusCode(401);
            }

            if (Defects.HttpStatus is { } status)
            {
                return Results.StatusCode(status);
            }

            if (Defects.RawBody is { } raw)
            {
                return Results.Text(raw, "application/json");
            }

            var nonceText = context.Request.Query["nonce"].ToString();
            if (nonceText.Length != 64 || !nonceText.All(char.IsAsciiHexDigit))
            {
                return Results.StatusCode(400);
            }

            return Results.Bytes(BuildReport(Convert.FromHexString(nonceText)), "application/json");
        }), TestContext.Current.CancellationToken);
        _app = app;
        BaseAddress = app.BaseAddress();
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }

        Platform.Dispose();
    }

    private void WriteReport(Utf8JsonWriter w, byte[] nonce, byte[] reportData, byte[] quote, IReadOnlyList<TdxEvent> events)
    {
        w.WriteString("signing_address", SigningAddress);
        w.WriteString("signing_algo", "ecdsa");
        w.WriteString("request_nonce", Convert.ToHexStringLower(nonce));
        w.WriteString("intel_quote", Convert.ToHexStringLower(quote));
        if (Defects.NvidiaPayload is { } payload)
        {
            w.WriteString("nvidia_payload", payload);
        }
        else
        {
            w.WriteNull("nvidia_payload");
        }

        w.WritePropertyName("event_log");
        w.WriteStartArray();
        foreach (var e in events)
        {
            WriteEvent(w, e);
        }

        w.WriteEndArray();
        w.WritePropertyName("info");
        w.WriteStartObject();
        w.WriteString("app_id", Convert.ToHexStringLower(AppId));
        w.WriteString("instance_id", Convert.ToHexStringLower(InstanceId));
        w.WriteString("app_cert", string.Empty);
        w.WriteString("tcb_info", TcbInfo(events));
        w.WriteString("app_name", "seed-vllm");
        w.WriteString("device_id", Convert.ToHexStringLower(SHA256.HashData(quote.AsSpan(28, 20))));
        w.WriteString("key_provider_info", "{\"name\":\"local-sgx\",\"id\":\"1b7a49d0a4f5c8b1\"}");
        w.WriteString("compose_hash", Convert.ToHexStringLower(ComposeHash));
        w.WriteEndObject();
        w.WriteString("report_data", Convert.ToHexStringLower(reportData));
    }

    /// <summary>dstack's tcb_info: pretty JSON, keys in alphabetical order (dstack.md §3.7).</summary>
    private string TcbInfo(IReadOnlyList<TdxEvent> events)
    {
        var compose = Defects.PublishesOtherCompose ? Encoding.UTF8.GetString(AppCompose).Replace("seed-vllm", "other-app", StringComparison.Ordinal) : Encoding.UTF8.GetString(AppCompose);
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("app_compose", compose);
            w.WriteString("compose_hash", Convert.ToHexStringLower(ComposeHash));
            w.WritePropertyName("event_log");
            w.WriteStartArray();
            foreach (var e in events)
            {
                WriteEvent(w, e);
            }

            w.WriteEndArray();
            w.WriteString("mrtd", Convert.ToHexStringLower(Platform.Profile.MrTd.Span));
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>dstack's JSON entry, serde order: imr, event_type, digest (hex), event, event_payload (hex).</summary>
    private static void WriteEvent(Utf8JsonWriter w, TdxEvent e)
    {
        w.WriteStartObject();
        w.WriteNumber("imr", e.Imr);
        w.WriteNumber("event_type", e.EventType);
        w.WriteString("digest", Convert.ToHexStringLower(e.EffectiveDigest()));
        w.WriteString("event", e.Event);
        w.WriteString("event_payload", Convert.ToHexStringLower(e.EventPayload.Span));
        w.WriteEndObject();
    }

    private static TdxEvent Boot(int imr, uint type, string text)
    {
        var payload = Encoding.UTF8.GetBytes(text);
        return new TdxEvent(imr, type, SHA384.HashData(payload), string.Empty, payload);
    }

    private static byte[] MrConfigIdV1(byte[] composeHash)
    {
        var value = new byte[48];
        value[0] = 1;
        composeHash.CopyTo(value, 1);
        return value;
    }
}

/// <summary>A collateral source that serves one set and counts requests.</summary>
internal sealed class FixedCollateral(DcapCollateral collateral) : ICollateralSource
{
    public int Requests { get; private set; }

    public Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default)
    {
        Requests++;
        return Task.FromResult(collateral);
    }
}

/// <summary>A collateral source that must never be asked (offline re-verification).</summary>
internal sealed class NoNetworkCollateral : ICollateralSource
{
    public Task<DcapCollateral> GetCollateralAsync(CollateralRequest request, CancellationToken cancellationToken = default) =>
        throw new InvalidOperationException("offline verification asked for collateral");
}
