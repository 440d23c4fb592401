namespace PrivateMl.Attestation.EventLog;

/// <summary>Names of the RTMR3 runtime events dstack's boot sequence emits (<c>dstack-util setup</c>), in boot order.</summary>
public static class DstackEventNames
{
    public const string SystemPreparing = "system-preparing";
    public const string AppId = "app-id";
    public const string ComposeHash = "compose-hash";
    public const string InstanceId = "instance-id";
    public const string BootMrDone = "boot-mr-done";
    public const string MrKms = "mr-kms";
    public const string OsImageHash = "os-image-hash";
    public const string KeyProvider = "key-provider";
    public const string StorageFs = "storage-fs";
    public const string SystemReady = "system-ready";

    /// <summary>Older name of <see cref="ComposeHash"/>, still honoured when reading.</summary>
    public const string UpgradedAppId = "upgraded-app-id";

    /// <summary>Boot events added after dstack v0.5.5.</summary>
    public const string InitScriptHash = "init-script-hash";
    public const string GpuPolicyHash = "gpu-policy-hash";
    public const string GpuAttestation = "gpu-attestation";
}
