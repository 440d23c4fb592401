using Microsoft.Extensions.Logging;

namespace PrivateMl.Agent;

/// <summary>The agent's log messages (source-generated). Values are ids and hashes, never key material.</summary>
internal static partial class AgentLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Listening for the {Api} API on {Address}")]
    public static partial void Listening(ILogger logger, string api, string address);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Removed stale socket file {Path}")]
    public static partial void RemovedStaleSocket(ILogger logger, string path);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "Measured boot identity into RTMR3: app_id {AppId}, compose_hash {ComposeHash}")]
    public static partial void BootMeasured(ILogger logger, string appId, string composeHash);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Event log already holds a completed boot; app_id {AppId}")]
    public static partial void IdentityFromLog(ILogger logger, string appId);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Debug, Message = "{Method} {Path} -> {Status}")]
    public static partial void Request(ILogger logger, string method, string path, int status);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Rejected {Method} {Path}: {Status} {Reason}")]
    public static partial void Rejected(ILogger logger, string method, string path, int status, string reason);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Error, Message = "Request {Path} failed inside the agent")]
    public static partial void Failed(ILogger logger, string path, Exception exception);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Information, Message = "Event {Name} measured into RTMR3 ({PayloadBytes} payload bytes)")]
    public static partial void EventEmitted(ILogger logger, string name, int payloadBytes);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "TDX device is SIMULATED ({Provider}): quotes from this agent prove nothing about hardware")]
    public static partial void Simulated(ILogger logger, string provider);

    [LoggerMessage(EventId = 4050, Level = LogLevel.Information, Message = "Opened the encrypted env: {Count} variables written to {Directory}")]
    public static partial void EnvDecrypted(ILogger logger, int count, string directory);

    [LoggerMessage(EventId = 4052, Level = LogLevel.Warning, Message = "The encrypted env was sealed to KMS key epoch {Epoch}, not the current {Current}: opened with that epoch's env key; encrypt it again (privateml env encrypt --kms) before epoch {Epoch} is retired")]
    public static partial void EnvFromEarlierEpoch(ILogger logger, uint epoch, uint current);

    [LoggerMessage(EventId = 4053, Level = LogLevel.Information, Message = "KMS key epoch {Epoch} gave no env key: {Reason}")]
    public static partial void EnvEpochUnavailable(ILogger logger, uint epoch, string reason);

    [LoggerMessage(EventId = 4051, Level = LogLevel.Warning, Message = "Encrypted env variables not in allowed_envs were dropped: {Names}")]
    public static partial void EnvDropped(ILogger logger, string names);
}
