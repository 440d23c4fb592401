namespace PrivateMl.Attestation.Verification;

/// <summary>Intel's TCB statuses, ordered from best to worst so that merging keeps the larger value.</summary>
public enum TcbStatus
{
    UpToDate = 0,
    SWHardeningNeeded = 1,
    ConfigurationNeeded = 2,
    ConfigurationAndSWHardeningNeeded = 3,
    OutOfDate = 4,
    OutOfDateConfigurationNeeded = 5,
    Revoked = 6,
}
