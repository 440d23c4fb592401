using System.Text.Json;
using System.Text.Json.Serialization;

namespace PrivateMl.Attestation.EventLog;

/// <summary>
/// Lets <see cref="TdxEvent"/> sit inside other System.Text.Json models (e.g. <c>tcb_info.event_log</c>, which dstack
/// pretty-prints): same keys, same order and the same checks as <see cref="TdxEventLog"/>. The outer writer's
/// indentation and encoder apply, so for byte-exact compact output use <see cref="TdxEventLog.Serialize(IEnumerable{TdxEvent})"/>.
/// </summary>
public sealed class TdxEventJsonConverter : JsonConverter<TdxEvent>
{
    public override TdxEvent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TdxEventLog.ReadEvent(ref reader, 0);

    public override void Write(Utf8JsonWriter writer, TdxEvent value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteStartObject();
        writer.WriteNumber("imr", value.Imr);
        writer.WriteNumber("event_type", value.EventType);
        writer.WriteString("digest", Convert.ToHexStringLower(value.Digest.Span));
        writer.WriteString("event", value.Event);
        writer.WriteString("event_payload", Convert.ToHexStringLower(value.EventPayload.Span));
        if (value.Version == TdxEventLogVersion.V2)
        {
            writer.WriteNumber("version", 2);
            if (value.IsRuntimeEvent)
            {
                writer.WriteString("preimage", Convert.ToHexStringLower(TdxEvent.RuntimeDigestPreimage(value.Event, value.EventPayload.Span, value.Version)));
            }
        }

        writer.WriteEndObject();
    }
}
