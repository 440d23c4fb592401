using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using PrivateMl.Attestation.Verification;

namespace PrivateMl.Attestation.EventLog;

/// <summary>How a dstack runtime event's digest is computed (dstack's <c>EventLogVersion</c>).</summary>
public enum TdxEventLogVersion
{
    /// <summary>SHA-384(LE32(event_type) ‖ ":" ‖ name ‖ ":" ‖ payload). The only form dstack v0.5.5 emits.</summary>
    V1 = 1,

    /// <summary>SHA-384 of the JCS JSON <c>{"name":…,"payload":"&lt;hex&gt;","type":134217729}</c> (dstack HEAD, opt-in).</summary>
    V2 = 2,
}

/// <summary>
/// One entry of a TDX event log in dstack's JSON shape:
/// <c>{"imr":3,"event_type":134217729,"digest":"&lt;96 hex&gt;","event":"app-id","event_payload":"&lt;hex&gt;"}</c>.
/// <see cref="Imr"/> is the 0-based RTMR index. Boot (CCEL) events carry an empty <see cref="Event"/> name and a digest
/// that cannot be recomputed from the payload; dstack runtime events (<see cref="RuntimeEventType"/>) have a digest that
/// is a function of name and payload, and <see cref="RtmrReplay"/> recomputes it.
/// </summary>
[JsonConverter(typeof(TdxEventJsonConverter))]
public sealed class TdxEvent : IEquatable<TdxEvent>
{
    /// <summary>dstack's runtime event type 0x08000001 (not defined by TCG); JSON shows 134217729.</summary>
    public const uint RuntimeEventType = 0x08000001;

    /// <summary>Size of a SHA-384 digest and of an RTMR.</summary>
    public const int DigestSize = 48;

    /// <summary>Number of RTMRs in a TD (RTMR0..RTMR3).</summary>
    public const int RtmrCount = 4;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _digest;
    private readonly byte[] _payload;

    /// <summary>Builds an entry as read from a log. Arguments are copied. Throws <see cref="AttestationException"/> for
    /// values no log may contain (IMR outside 0..3, a digest that is neither 48 bytes nor — for runtime events — empty,
    /// oversized name or payload).</summary>
    public TdxEvent(
        int imr,
        uint eventType,
        ReadOnlySpan<byte> digest,
        string @event,
        ReadOnlySpan<byte> eventPayload,
        TdxEventLogVersion version = TdxEventLogVersion.V1)
    {
        ArgumentNullException.ThrowIfNull(@event);
        if (imr is < 0 or >= RtmrCount)
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"event log entry has imr {imr}; a TD has RTMR0..RTMR3 (imr 0..3)");
        }

        if (version is not (TdxEventLogVersion.V1 or TdxEventLogVersion.V2))
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"event log entry has unknown version {(int)version}; known versions are 1 and 2");
        }

        var isRuntime = eventType == RuntimeEventType;
        if (digest.Length != DigestSize && !(isRuntime && digest.IsEmpty))
        {
            throw new AttestationException(ErrorCode.EventLogMalformed, $"event log entry digest is {digest.Length} bytes; a TDX (SHA-384) digest is {DigestSize}");
        }

        if (@event.Length > TdxEventLogLimits.MaxEventNameChars)
        {
            throw new AttestationException(ErrorCode.EventLogTooLarge, $"event name is {@event.Length} characters; the limit is {TdxEventLogLimits.MaxEventNameChars}");
        }

        if (eventPayload.Length > TdxEventLogLimits.MaxPayloadBytes)
        {
            throw new AttestationException(ErrorCode.EventLogTooLarge, $"event payload is {eventPayload.Length} bytes; the limit is {TdxEventLogLimits.MaxPayloadBytes}");
        }

        if (isRuntime)
        {
            // The name is hashed as UTF-8: a name that has no UTF-8 form (a lone surrogate) cannot be measured.
            try
            {
                _ = StrictUtf8.GetByteCount(@event);
            }
            catch (EncoderFallbackException e)
            {
                throw new AttestationException(ErrorCode.EventLogMalformed, "runtime event name is not valid Unicode text", e);
            }
        }

        Imr = imr;
        EventType = eventType;

        // A runtime event's digest is a function of its content; dstack's "stripped" form leaves it out. Fill it in so
        // that everything written from this entry (and every SDK replaying that) sees the real digest.
        _digest = isRuntime && digest.IsEmpty ? ComputeRuntimeDigest(@event, eventPayload, version) : digest.ToArray();
        Event = @event;
        _payload = eventPayload.ToArray();
        Version = version;
    }

    /// <summary>0-based RTMR index (0..3).</summary>
    public int Imr { get; }

    /// <summary>TCG event type, or <see cref="RuntimeEventType"/> for dstack runtime events.</summary>
    public uint EventType { get; }

    /// <summary>The digest as logged (48 bytes); for a runtime event logged without one, the digest of its content.</summary>
    public ReadOnlyMemory<byte> Digest => _digest;

    /// <summary>Event name; <c>""</c> for firmware (CCEL) events.</summary>
    public string Event { get; }

    /// <summary>Raw event data (hex in JSON).</summary>
    public ReadOnlyMemory<byte> EventPayload => _payload;

    /// <summary>Digest rule of a runtime event. Always <see cref="TdxEventLogVersion.V1"/> for other events.</summary>
    public TdxEventLogVersion Version { get; }

    /// <summary>True for dstack runtime events, whose digest is recomputed from name and payload.</summary>
    public bool IsRuntimeEvent => EventType == RuntimeEventType;

    /// <summary>The payload read as UTF-8 text (e.g. the <c>key-provider</c> JSON); invalid bytes become U+FFFD.</summary>
    public string PayloadText => Encoding.UTF8.GetString(_payload);

    /// <summary>
    /// The digest that extends the RTMR: for runtime events the one recomputed from name and payload (never the logged
    /// value), for other events the logged digest.
    /// </summary>
    public byte[] EffectiveDigest() =>
        IsRuntimeEvent ? ComputeRuntimeDigest(Event, _payload, Version) : (byte[])_digest.Clone();

    /// <summary>True when this is a runtime event whose logged digest differs from the digest of its name and payload.</summary>
    public bool HasMismatchedDigest =>
        IsRuntimeEvent && !CryptographicOperations.FixedTimeEquals(_digest, ComputeRuntimeDigest(Event, _payload, Version));

    /// <summary>Creates a dstack runtime event for RTMR3 with its digest computed from <paramref name="name"/> and <paramref name="payload"/>.</summary>
    public static TdxEvent CreateRuntime(string name, ReadOnlySpan<byte> payload, TdxEventLogVersion version = TdxEventLogVersion.V1)
    {
        ArgumentNullException.ThrowIfNull(name);
        var digest = ComputeRuntimeDigest(name, payload, version);
        return new TdxEvent(3, RuntimeEventType, digest, name, payload, version);
    }

    /// <summary>The exact bytes hashed into a runtime event's digest (dstack's "preimage").</summary>
    public static byte[] RuntimeDigestPreimage(string name, ReadOnlySpan<byte> payload, TdxEventLogVersion version = TdxEventLogVersion.V1)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (version == TdxEventLogVersion.V2)
        {
            var json = new StringBuilder(name.Length + (payload.Length * 2) + 48);
            json.Append("{\"name\":");
            JsonText.AppendString(json, name);
            json.Append(",\"payload\":\"").Append(Convert.ToHexStringLower(payload)).Append("\",\"type\":");
            json.Append(RuntimeEventType.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('}');
            return StrictUtf8.GetBytes(json.ToString());
        }

        var nameLength = StrictUtf8.GetByteCount(name);
        var buffer = new byte[4 + 1 + nameLength + 1 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, RuntimeEventType);
        buffer[4] = (byte)':';
        StrictUtf8.GetBytes(name, buffer.AsSpan(5, nameLength));
        buffer[5 + nameLength] = (byte)':';
        payload.CopyTo(buffer.AsSpan(6 + nameLength));
        return buffer;
    }

    /// <summary>dstack's runtime event digest: SHA-384 over <see cref="RuntimeDigestPreimage"/>.</summary>
    public static byte[] ComputeRuntimeDigest(string name, ReadOnlySpan<byte> payload, TdxEventLogVersion version = TdxEventLogVersion.V1) =>
        SHA384.HashData(RuntimeDigestPreimage(name, payload, version));

    /// <summary>This entry as one compact JSON object in dstack's key order (one line of a runtime log file).</summary>
    public string ToJson() => TdxEventLog.Serialize(this);

    public bool Equals(TdxEvent? other) =>
        other is not null
        && Imr == other.Imr
        && EventType == other.EventType
        && Version == other.Version
        && string.Equals(Event, other.Event, StringComparison.Ordinal)
        && _digest.AsSpan().SequenceEqual(other._digest)
        && _payload.AsSpan().SequenceEqual(other._payload);

    public override bool Equals(object? obj) => Equals(obj as TdxEvent);

    public override int GetHashCode() => HashCode.Combine(Imr, EventType, Event, _digest.Length == 0 ? 0 : _digest[0], _payload.Length);

    public override string ToString() =>
        $"imr {Imr} type 0x{EventType:x8} {(Event.Length == 0 ? "(firmware)" : Event)} ({_payload.Length} payload bytes)";
}
