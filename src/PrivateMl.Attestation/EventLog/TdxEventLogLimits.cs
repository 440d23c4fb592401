namespace PrivateMl.Attestation.EventLog;

/// <summary>Bounds applied to every event log read from outside, before anything is allocated for it.</summary>
public static class TdxEventLogLimits
{
    /// <summary>Largest event log accepted as JSON (UTF-8 bytes).</summary>
    public const int MaxEventLogBytes = 8 * 1024 * 1024;

    /// <summary>Most entries accepted in one log.</summary>
    public const int MaxEvents = 8192;

    /// <summary>Longest event name accepted (UTF-16 characters).</summary>
    public const int MaxEventNameChars = 4096;

    /// <summary>Largest event payload accepted (bytes).</summary>
    public const int MaxPayloadBytes = 1024 * 1024;
}
