using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using PrivateMl.Attestation.Verification;
using PrivateMl.Kms.Keys;

namespace PrivateMl.Kms;

/// <summary>The KMS's log messages (source-generated). Values are ids, hashes and codes, never key material.</summary>
internal static partial class KmsLog
{
    [LoggerMessage(EventId = 9001, Level = LogLevel.Information, Message = "KMS listening on {Address}; root CA key {RootSpkiHash}, k256 root {K256PublicKey}, current epoch {Epoch}")]
    public static partial void Listening(ILogger logger, string address, string rootSpkiHash, string k256PublicKey, uint epoch);

    [LoggerMessage(EventId = 9002, Level = LogLevel.Warning, Message = "KMS is SIMULATED: it trusts the simulator's root, not Intel's; keys it releases protect nothing")]
    public static partial void Simulated(ILogger logger);

    [LoggerMessage(EventId = 9003, Level = LogLevel.Warning, Message = "Refused {Method} ({Code} {CodeNumber}): {Reason}")]
    public static partial void Refused(ILogger logger, string method, ErrorCode code, int codeNumber, string reason);

    [LoggerMessage(EventId = 9004, Level = LogLevel.Information, Message = "Released app keys: app_id {AppId}, instance_id {InstanceId}, epoch {Epoch}{Simulated}")]
    public static partial void Released(ILogger logger, string appId, string instanceId, uint epoch, string simulated);

    [LoggerMessage(EventId = 9005, Level = LogLevel.Warning, Message = "Released the root keys to a replica KMS: app_id {AppId}, compose_hash {ComposeHash}{Simulated}")]
    public static partial void Replicated(ILogger logger, string appId, string composeHash, string simulated);

    [LoggerMessage(EventId = 9006, Level = LogLevel.Warning, Message = "The KMS policy lists no apps, compose hashes or OS images: any attested app with an accepted TCB gets keys")]
    public static partial void OpenPolicy(ILogger logger);

    [LoggerMessage(EventId = 9007, Level = LogLevel.Error, Message = "Request {Path} failed inside the KMS")]
    public static partial void Failed(ILogger logger, string path, Exception exception);
}

[JsonSerializable(typeof(EpochFile))]
[JsonSourceGenerationOptions(WriteIndented = true)]
internal sealed partial class KmsJsonContext : JsonSerializerContext;
