using Microsoft.Extensions.Logging;

namespace PrivateMl.Gateway.Operations;

/// <summary>Gateway log messages. No prompt or completion text and no secrets ever reach a log.</summary>
internal static partial class GatewayLog
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Gateway keys ready ({Source}): ecdsa {EcdsaAddress}, ed25519 {Ed25519Key}")]
    public static partial void KeysReady(ILogger logger, SigningKeySource source, string ecdsaAddress, string ed25519Key);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "No bearer tokens configured: every endpoint is open")]
    public static partial void NoTokens(ILogger logger);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Upstream unreachable for {Path}: {Reason}")]
    public static partial void UpstreamUnavailable(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Information, Message = "Upstream answered {Status} for {Path}; relayed")]
    public static partial void UpstreamStatus(ILogger logger, int status, string path);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Warning, Message = "Response {ReceiptId} aborted after {Bytes} bytes ({Reason}); no signature stored")]
    public static partial void Aborted(ILogger logger, string receiptId, long bytes, string reason);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Debug, Message = "Response {ReceiptId} (chat {ChatId}) signed: {Bytes} bytes")]
    public static partial void Signed(ILogger logger, string receiptId, string chatId, long bytes);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Error, Message = "Could not store the signature of {ReceiptId}")]
    public static partial void StoreFailed(ILogger logger, string receiptId, Exception exception);

    [LoggerMessage(EventId = 5008, Level = LogLevel.Warning, Message = "Attestation report failed: {Reason}")]
    public static partial void AttestationFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 5009, Level = LogLevel.Information, Message = "Rejected {Path}: {Status} {Reason}")]
    public static partial void Rejected(ILogger logger, string path, int status, string reason);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Information, Message = "Signatures kept in {Store}")]
    public static partial void Store(ILogger logger, string store);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Warning, Message = "The memory signature store may grow to about {BoundMiB} MiB, more than half of the {AvailableMiB} MiB this process may use: lower --max-signatures or --signature-ttl, or keep signatures in Redis (--redis)")]
    public static partial void StoreMayNotFit(ILogger logger, long boundMiB, long availableMiB);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Attested keyset {Digest} ready ({E2eeKeys} E2EE keys)")]
    public static partial void KeysetReady(ILogger logger, string digest, int e2eeKeys);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Warning, Message = "secp256k1 (ACI E2EE and the ECDSA response signatures) runs on the managed NBitcoin port (native libsecp256k1 absent, refused its self-check, or PRIVATEML_SECP256K1=managed): same bytes, several times the CPU per streamed chunk and per signature")]
    public static partial void Secp256k1Managed(ILogger logger);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Information, Message = "Inline I/O: requests and first bytes run on the socket threads, later chunks and signing on the thread pool; upstream socket completions inline: {UpstreamInline} (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 at process start turns them on)")]
    public static partial void InlineIo(ILogger logger, bool upstreamInline);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Information, Message = "Stopping: /ready answers 503; serving {DrainSeconds} s more before the listeners close; {InFlight} completions in flight, {ShutdownSeconds} s allowed for them after that")]
    public static partial void Stopping(ILogger logger, double drainSeconds, int inFlight, double shutdownSeconds);

    [LoggerMessage(EventId = 5013, Level = LogLevel.Information, Message = "Stopped; completions still in flight, aborted and unsigned: {InFlight}")]
    public static partial void Stopped(ILogger logger, int inFlight);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Information, Message = "Attested keyset renewed before it expires: {OldDigest} → {NewDigest} (same keys), valid until {NotAfter:u}")]
    public static partial void KeysetRenewed(ILogger logger, string oldDigest, string newDigest, DateTimeOffset notAfter);

    [LoggerMessage(EventId = 5014, Level = LogLevel.Warning, Message = "Not ready: the model does not answer ({Reason})")]
    public static partial void ModelUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 5015, Level = LogLevel.Information, Message = "The model answers GET /v1/models")]
    public static partial void ModelAnswers(ILogger logger);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Information, Message = "E2EE request refused on {Path}: {Code}")]
    public static partial void E2eeRefused(ILogger logger, string path, string code);
}
