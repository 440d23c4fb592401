namespace PrivateMl.E2ee.Aci;

/// <summary>
/// Why an ACI E2EE v2 exchange was refused. The first ten are the spec's wire codes (e2ee-v2.md §9, HTTP 400 each);
/// <see cref="ModelError"/> is this gateway's wire code for a model error on an E2EE request; the rest are this
/// client's own refusals (a response it cannot trust), never sent on the wire.
/// </summary>
public enum AciE2eeError
{
    HeaderMissing = 1,
    InvalidVersion,
    InvalidPublicKey,
    ModelKeyMismatch,
    InvalidNonce,
    ReplayDetected,
    InvalidTimestamp,
    InvalidPayloadModel,
    DecryptionFailed,
    UnsupportedEndpoint,

    /// <summary>
    /// The model answered an error (non-2xx). ACI v2 defines no encrypted error, so the gateway relays the status and a
    /// typed body but not the model's message, which may quote the decrypted prompt (wire code <c>e2ee_model_error</c>).
    /// </summary>
    ModelError = 50,

    /// <summary>Client: the service key is not in the keyset attested in this run.</summary>
    KeyNotAttested = 100,

    /// <summary>Client: the response came back without E2EE (missing headers, or a plaintext content field).</summary>
    ResponseNotEncrypted,

    /// <summary>Client: the response used another E2EE version or suite than the one requested.</summary>
    Downgrade,

    /// <summary>Client: the bytes received do not match the gateway's signature over what it sent (dropped, reordered, duplicated or truncated stream chunks, or a rewrite).</summary>
    StreamIntegrity,

    /// <summary>Client: the node could not be verified, so nothing is encrypted to it.</summary>
    NodeNotTrusted,
}

/// <summary>Wire codes of <see cref="AciE2eeError"/>.</summary>
public static class AciE2eeErrors
{
    public static string Code(this AciE2eeError error) => error switch
    {
        AciE2eeError.HeaderMissing => "e2ee_header_missing",
        AciE2eeError.InvalidVersion => "e2ee_invalid_version",
        AciE2eeError.InvalidPublicKey => "e2ee_invalid_public_key",
        AciE2eeError.ModelKeyMismatch => "e2ee_model_key_mismatch",
        AciE2eeError.InvalidNonce => "e2ee_invalid_nonce",
        AciE2eeError.ReplayDetected => "e2ee_replay_detected",
        AciE2eeError.InvalidTimestamp => "e2ee_invalid_timestamp",
        AciE2eeError.InvalidPayloadModel => "e2ee_invalid_payload_model",
        AciE2eeError.DecryptionFailed => "e2ee_decryption_failed",
        AciE2eeError.UnsupportedEndpoint => "e2ee_unsupported_endpoint",
        AciE2eeError.ModelError => "e2ee_model_error",
        AciE2eeError.KeyNotAttested => "e2ee_key_not_attested",
        AciE2eeError.ResponseNotEncrypted => "e2ee_response_not_encrypted",
        AciE2eeError.Downgrade => "e2ee_downgrade",
        AciE2eeError.StreamIntegrity => "e2ee_stream_integrity",
        AciE2eeError.NodeNotTrusted => "e2ee_node_not_trusted",
        _ => "e2ee_error",
    };

    /// <summary>The error for a wire code (the spec's ten and <c>e2ee_model_error</c>), or null for any other.</summary>
    public static AciE2eeError? FromCode(string? code) =>
        Enum.GetValues<AciE2eeError>().Where(e => (int)e < 100).Cast<AciE2eeError?>().FirstOrDefault(e => e!.Value.Code() == code);
}

/// <summary>An ACI E2EE v2 refusal. Callers branch on <see cref="Error"/>; the message never holds plaintext or keys.</summary>
public sealed class AciE2eeException(AciE2eeError error, string message) : Exception(message)
{
    public AciE2eeError Error { get; } = error;

    /// <summary>The wire code (<c>e2ee_…</c>).</summary>
    public string Code => Error.Code();
}
